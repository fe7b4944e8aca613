"""Commands that cannot silently do the wrong thing: read-only commands refuse a data directory that does not
exist, ``./dev serve --seed`` takes its flags in any order and never seeds a store twice, and the root and
``/console`` answer usefully."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def fhir_clr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``fhir-clr`` (the module, in this environment) and capture its output."""
    return subprocess.run([sys.executable, "-m", "fhir_clr.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", [
    ["export", "rtf", "--program", "ecm", "--provider", "1234567893", "--period", "2026-11", "--out", "x.csv"],
    ["export", "bulk", "out"],
    ["report", "compliance", "--from", "2026-11-01", "--to", "2026-11-30"],
])
def test_read_only_commands_refuse_a_missing_data_directory(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    done = fhir_clr(*command, "--data", str(missing))
    assert done.returncode == 2
    assert f"no data directory at {missing}" in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists()  # no new empty store was made


def test_read_only_commands_honour_the_data_directory_of_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "env-dir"
    done = fhir_clr("report", "compliance", "--from", "2026-11-01", "--to", "2026-11-30",
                    env={"FHIR_CLR_DATA_DIR": str(missing)})
    assert done.returncode == 2 and f"no data directory at {missing}" in done.stderr


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server did not become ready:\n{log.read_text()}")


def _dev_serve(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``./dev serve --port P --seed --data D`` (``--seed`` after another flag on purpose)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_CLR_")}
    with log.open("ab") as out:
        return subprocess.Popen([str(REPO / "dev"), "serve", "--port", str(port), "--seed", "--data", str(data)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _referrals(base: str) -> int:
    found = httpx.get(f"{base}/ServiceRequest", params={"_summary": "count"},
                      headers={"Accept": "application/fhir+json"}).json()
    return int(found["total"])


def test_dev_serve_seed_takes_flags_in_any_order_and_never_seeds_twice(tmp_path: Path) -> None:
    data, log, port = tmp_path / "data", tmp_path / "dev-serve.log", free_port()
    base = f"http://127.0.0.1:{port}"
    server = _dev_serve(data, port, log)
    try:
        _wait_ready(base, server, log)
        seeded = _referrals(base)
        assert seeded > 0

        index = httpx.get(f"{base}/", headers={"Accept": "application/json"})
        assert index.status_code == 200
        assert index.json()["links"]["metadata"] == f"{base}/metadata"
        assert index.json()["links"]["console"] == f"{base}/console/"
        page = httpx.get(f"{base}/", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html") and 'href="' + base + '/console/"' in page.text
        moved = httpx.get(f"{base}/console")
        assert moved.status_code == 308 and moved.headers["location"] == "/console/"
    finally:
        _stop(server)

    server = _dev_serve(data, port, log)
    try:
        _wait_ready(base, server, log)
        assert _referrals(base) == seeded
    finally:
        _stop(server)
    assert "already holds referrals: no synthetic population added" in log.read_text()
