"""Shared fixtures: a live fhir-clr server (uvicorn in a subprocess on a free port, embedded store in a
temporary directory) and an HTTP client for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def pytest_report_header() -> list[str]:
    """Say which databases the suite runs on (the MongoDB run is opt-in with MONGODB_URI)."""
    from tests.mongo_engines import mongo_engine

    return ["stores: embedded SQLite (API and contract tests); MongoDB adapter (contract and unit tests) on "
            + mongo_engine()]


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A fhir-clr server process for tests: dev mode (no authentication) unless ``dev=False`` (then with
    ``FHIR_CLR_BASE_URL`` set to its own address, unless ``env`` says otherwise)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *, dev: bool = True) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        # A secured server needs its public base URL (the token URL under it is the only valid assertion
        # audience): here the loopback address the tests use.
        secured = {} if dev else {"FHIR_CLR_BASE_URL": self.base_url}
        self.env = {**os.environ, "FHIR_CLR_DATA_DIR": str(data_dir), "FHIR_CLR_LOG_LEVEL": "WARNING",
                    "FHIR_CLR_DEV": "true" if dev else "false", **secured, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    def start(self, timeout: float = 90.0) -> None:
        """Start uvicorn and wait until ``/readyz`` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fhir_clr.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # do not leave a server behind that would come up after the test gave up on it
        raise RuntimeError(f"server did not become ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), then forcefully if needed."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (embedded store) shared by the API tests of a session."""
    server = LiveServer(tmp_path_factory.mktemp("live-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client bound to the live server's FHIR base."""
    with httpx.Client(base_url=live_server.base_url, timeout=30.0,
                      headers={"Accept": "application/fhir+json"}) as http:
        yield http
