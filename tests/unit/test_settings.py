"""Settings precedence (flags over the environment over the defaults), the bundled reference data, and the
command line reading its configuration only through Settings (never writing os.environ)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from fhir_clr import cli
from fhir_clr.config import BUNDLED_MAPPINGS_DIR, BUNDLED_PROFILES_DIR, DEFAULT_DATA_DIR, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("FHIR_CLR_")]:
        monkeypatch.delenv(name)


def test_defaults_are_the_bundled_reference_data_and_one_data_directory() -> None:
    settings = Settings()
    assert settings.data_dir == DEFAULT_DATA_DIR == Path("./data")
    assert settings.profiles_dir == BUNDLED_PROFILES_DIR and (BUNDLED_PROFILES_DIR / "package.json").is_file()
    assert settings.mappings_dir == BUNDLED_MAPPINGS_DIR and any(BUNDLED_MAPPINGS_DIR.glob("*.yaml"))
    assert settings.log_level == "INFO" and settings.dev is False


def test_environment_wins_over_defaults_and_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("FHIR_CLR_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("FHIR_CLR_PROFILES_DIR", str(tmp_path / "plan-profiles"))
    monkeypatch.setenv("FHIR_CLR_LOG_LEVEL", "debug")
    assert Settings().data_dir == tmp_path / "env"
    flagged = Settings.from_flags(data_dir=tmp_path / "flag", dev=None)
    assert flagged.data_dir == tmp_path / "flag"
    assert flagged.profiles_dir == tmp_path / "plan-profiles"  # not given as a flag: the environment's
    assert flagged.log_level == "debug" and flagged.dev is False  # dev=None means "flag not given"


def test_a_log_level_that_does_not_exist_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_CLR_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="log_level"):
        Settings()


def test_worker_environment_carries_only_what_differs_from_the_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dev=True)
    assert settings.as_environment() == {"FHIR_CLR_DATA_DIR": str(tmp_path), "FHIR_CLR_DEV": "True"}
    assert Settings.model_validate({}).model_copy().as_environment() == {}


def test_serve_builds_the_app_from_flags_and_environment_without_touching_os_environ(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    monkeypatch.setenv("FHIR_CLR_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("FHIR_CLR_LOG_LEVEL", "ERROR")
    before = dict(os.environ)
    assert cli.main(["serve", "--port", "8123", "--data", str(tmp_path / "flag"), "--dev"]) == 0
    assert dict(os.environ) == before
    settings = started["app"].state.settings
    assert settings.data_dir == tmp_path / "flag" and settings.dev is True
    assert settings.listen_url == "http://127.0.0.1:8123" and started["port"] == 8123
    import logging
    assert logging.getLogger().level == logging.ERROR  # FHIR_CLR_LOG_LEVEL is honoured


def test_dev_mode_from_the_environment_still_refuses_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_CLR_DEV", "true")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2


def test_every_command_and_flag_has_help() -> None:
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.help is None:
                missing.append(f"{path} {action.option_strings or action.dest}")

    walk(cli.build_parser(), "fhir-clr")
    assert missing == []


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("fhir-clr ")


def test_readme_configuration_table_names_every_setting_and_serve_flag() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## Layout")]
    missing = [name for name in Settings.model_fields if f"FHIR_CLR_{name.upper()}" not in table]
    assert missing == []
    serve = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]
    flags = [f for action in serve._actions for f in action.option_strings if f.startswith("--") and f != "--help"]
    assert [f for f in flags if f"`{f}" not in table] == []
