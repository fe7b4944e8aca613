"""The built wheel works on its own: installed into a fresh virtualenv in a temporary folder (no source tree
on ``sys.path``), ``fhir-clr seed`` loads a population, an RTF file seed wrote imports, and ``fhir-clr serve``
answers the capability statement, a CLR CodeSystem, the worklist and the console.

The dependencies are installed at the versions of ``constraints.txt``, as in the Docker image, from a
wheelhouse downloaded on the first run and kept in the test virtualenv."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _build_isolation() -> list[str]:
    """Build with this environment's setuptools when it meets the build-system requirement (the test extras
    install one), which saves an isolated build environment per run; else let pip make one."""
    try:
        ready = int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        ready = False
    return ["--no-build-isolation"] if ready else []


def _wheelhouse(root: Path, env: dict[str, str]) -> Path:
    """The dependency wheels of ``constraints.txt``, downloaded once per version of that file and kept in the
    running virtualenv (so later runs install offline and fast)."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()[:16]
    house = Path(sys.prefix) / "fhir-clr-wheelhouse" / digest
    if not house.is_dir():
        partial = house.with_name(f"{digest}.partial-{os.getpid()}")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(partial), "--only-binary", ":all:",
              "-r", str(CONSTRAINTS)], root, env)
        partial.rename(house)
    return house


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv with the wheel built from this checkout; its ``bin`` and a clean environment."""
    root = tmp_path_factory.mktemp("installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_CLR_", "PYTHON", "VIRTUAL_ENV"))}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *_build_isolation(), "--wheel-dir",
          str(root / "dist"), str(REPO)], root, env)
    wheel = next((root / "dist").glob("fhir_clr-*.whl"))
    venv.create(root / "venv", with_pip=False)  # this environment's pip installs into it (--python)
    python = root / "venv" / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check",
          "--no-index", "--find-links", str(_wheelhouse(root, env)), "--constraint", str(CONSTRAINTS), str(wheel)],
         root, env)
    located = _run([str(python), "-c", "import fhir_clr; print(fhir_clr.__file__)"], root, env).stdout
    assert str(REPO) not in located, located
    return root / "venv" / "bin", env


def test_installed_wheel_seeds_imports_and_serves(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    bin_dir, env = installed
    work = tmp_path / "work"
    work.mkdir()
    fhir_clr = str(bin_dir / "fhir-clr")
    env = {**env, "FHIR_CLR_DATA_DIR": str(work / "data")}
    _run([fhir_clr, "seed", "--members", "8", "--files", str(work / "files")], work, env)
    rtf = sorted((work / "files").glob("rtf-ecm-*.csv"))[0]
    imported = json.loads(_run([fhir_clr, "import", "rtf", str(rtf), "--program", "ecm", "--json"], work,
                               env).stdout)
    assert imported["spec"] == "ecm-rtf-clr" and imported["fileProblems"] == []
    assert re.match(r"[1-9]\d* rows: ", imported["summary"]), imported["summary"]  # every row has an outcome

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (work / "serve.log").open("w")
    server = subprocess.Popen([fhir_clr, "serve", "--dev", "--port", str(port)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (work / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        headers = {"Accept": "application/fhir+json"}
        metadata = httpx.get(f"{base}/metadata", headers=headers).json()
        assert metadata["resourceType"] == "CapabilityStatement"
        code_system = httpx.get(f"{base}/CodeSystem/referral-status", headers=headers)
        assert code_system.status_code == 200, code_system.text
        assert code_system.json()["concept"]
        worklist = httpx.get(f"{base}/$clr-worklist", headers=headers)
        assert worklist.status_code == 200, worklist.text
        assert any(p["name"] == "rulesVersion" for p in worklist.json()["parameter"])
        console = httpx.get(f"{base}/console/")
        assert console.status_code == 200 and "<html" in console.text.lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
