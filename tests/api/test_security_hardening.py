"""Issue 17, findings 6, 7, 9, 10 and part of 11, against live secured servers: the server refuses to start
without its public base URL and the Host header never chooses the token audience; complex JSON bodies are
refused before they cost memory; oversized searches answer 400 (never 503); the token endpoint is rate
limited, fetches a JWKS URL at most once per interval whatever the assertions' kids, and answers an unknown
client exactly like a bad signature; /metrics, /docs and /openapi.json need a token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc.jwk import RSAKey

from fhir_clr.app import create_app
from fhir_clr.config import ConfigurationError, Settings
from tests.api.helpers import FHIR_JSON
from tests.api.security_client import (
    access_token,
    assertion,
    http_for,
    new_client,
    register,
    token_response,
)
from tests.conftest import LiveServer, free_port

PLAN = new_client("plan-app", "Organization/plan", "plan", ["system/*.cruds"])
PLAN_READER = new_client("plan-reader", "Organization/plan", "plan", ["system/*.read"])
PROVIDER = new_client("cbo-app", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"], ec=True)
REMOTE = new_client("remote-keys-app", "Organization/cbo-a", "servicing-provider", ["system/*.rs"])
"""Registered with a JWKS URL served by this test process."""


class JwksServer:
    """A JWKS URL on loopback that counts how often it is fetched."""

    def __init__(self, jwks: dict[str, object]) -> None:
        self.fetches = 0
        body = orjson.dumps(jwks)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    """The remote client's key set, served on loopback."""
    server = JwksServer({"keys": [REMOTE.key.as_dict(private=False)]})
    yield server
    server.close()


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, jwks_server: JwksServer) -> Iterator[LiveServer]:
    """A secured server with default settings (10 MB bodies, default budget and limits), loopback JWKS allowed."""
    data_dir: Path = tmp_path_factory.mktemp("hardened-server")
    for client in (PLAN, PLAN_READER, PROVIDER):
        register(data_dir, client)
    subprocess.run([sys.executable, "-m", "fhir_clr.cli", "clients", "add", REMOTE.client_id, "--data",
                    str(data_dir), "--organization", REMOTE.organization, "--role", REMOTE.role,
                    "--jwks-url", jwks_server.url, "--scope", "system/*.rs"], check=True, capture_output=True)
    # the JWKS URL is on loopback: allowed like an internal webhook endpoint
    server = LiveServer(data_dir, {"FHIR_CLR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}, dev=False)
    server.start()
    yield server
    server.stop()


def _token_url(server: LiveServer) -> str:
    return f"{server.base_url}/auth/token"


# ---- finding 6: the public base URL, not the Host header, decides the token audience ---------------------


def test_secured_server_refuses_to_start_without_a_base_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_CLR_")}
    try:
        served = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "serve", "--data", str(tmp_path),
                                 "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("fhir-clr serve started a secured server without FHIR_CLR_BASE_URL")
    assert served.returncode == 2
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "FHIR_CLR_BASE_URL" in lines[0] and "Traceback" not in served.stderr
    with pytest.raises(ConfigurationError, match="FHIR_CLR_BASE_URL"):
        create_app(Settings(data_dir=tmp_path, dev=False))
    with pytest.raises(ConfigurationError, match="absolute"):
        create_app(Settings(data_dir=tmp_path, dev=False, base_url="fhir.example.org"))
    create_app(Settings(data_dir=tmp_path, dev=True))  # dev mode needs none
    server = LiveServer(tmp_path / "uvicorn", {"FHIR_CLR_BASE_URL": ""}, dev=False)
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start()
    server.stop()


def test_host_header_does_not_choose_the_audience(secure: LiveServer) -> None:
    foreign = "https://other-fhir.example.org"
    response = httpx.post(_token_url(secure), headers={"Host": "other-fhir.example.org"}, data={
        "grant_type": "client_credentials", "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(PLAN, f"{foreign}/auth/token")})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    discovery = httpx.get(f"{secure.base_url}/.well-known/smart-configuration",
                          headers={"Host": "other-fhir.example.org"}).json()
    assert discovery["token_endpoint"] == _token_url(secure)


# ---- finding 7: the body budget and the large-body gate --------------------------------------------------


def _peak_rss_mb(server: LiveServer) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def _post_all(base_url: str, token: str, body: bytes, copies: int) -> list[httpx.Response]:
    headers = {**FHIR_JSON, "Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as http:
        return list(await asyncio.gather(*(http.post("/Patient", content=body, headers=headers)
                                           for _ in range(copies))))


def test_complex_bodies_are_refused_before_they_cost_memory(secure: LiveServer) -> None:
    token = access_token(secure.base_url, PLAN)
    tiny_strings = orjson.dumps({"resourceType": "Patient", "name": [{"given": ["abc"] * 1_400_000}]})
    numbers = orjson.dumps({"resourceType": "Patient", "extension": [{"url": "http://example.org/n",
                                                                      "valueDecimal": [1] * 2_000_000}]})
    started = time.perf_counter()
    responses = asyncio.run(_post_all(secure.base_url, token, tiny_strings, 4))
    responses += asyncio.run(_post_all(secure.base_url, token, numbers, 1))
    assert time.perf_counter() - started < 20
    for response in responses:
        assert response.status_code == 413, response.text[:300]
        issue = response.json()["issue"][0]
        assert issue["code"] == "too-costly"
    assert "more than 400000 strings" in responses[0].text
    assert "more than 600000 values" in responses[-1].text
    # measured: about 150 MB (the server starts at about 130 MB); the same bodies took it past 2 GB before
    assert _peak_rss_mb(secure) < 400
    # an ordinary body is untouched, and so is text full of commas and brackets (counted exactly)
    with http_for(secure.base_url, token) as http:
        prose = {"resourceType": "Patient", "name": [{"text": "a, [b]: {c}, " * 150_000}]}
        assert http.post("/Patient", json=prose, headers=FHIR_JSON).status_code == 201


# ---- finding 9: search size limits -----------------------------------------------------------------------


def test_oversized_searches_answer_400_and_searches_within_the_limits_run(secure: LiveServer) -> None:
    with http_for(secure.base_url, access_token(secure.base_url, PLAN)) as http:
        repeated = http.get("/Patient?" + "&".join(["name=x"] * 500))
        assert repeated.status_code == 400, repeated.text
        assert repeated.json()["issue"][0]["code"] == "too-costly"
        assert "at most 100 are allowed" in repeated.text
        many_values = http.get("/Patient", params={"_id": ",".join(str(uuid.uuid4()) for _ in range(501))})
        assert many_values.status_code == 400 and "more than 500 comma-separated values" in many_values.text
        # the largest searches allowed compile and run (SQLite used to refuse them as "too large" -> 503)
        values = ",".join(f"v{i}" for i in range(10))
        started = time.perf_counter()
        widest = http.get("/Patient?" + "&".join([f"name={values}"] * 100))
        assert widest.status_code == 200, widest.text
        longest = http.post("/Patient/_search", content="&".join([f"identifier=s|{values}"] * 100),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert longest.status_code == 200, longest.text
        assert time.perf_counter() - started < 10


# ---- finding 10: token endpoint abuse --------------------------------------------------------------------


def test_unknown_client_and_bad_signature_get_one_answer(secure: LiveServer) -> None:
    stranger = new_client("no-such-client", "Organization/x", "plan", ["system/*.rs"])
    unknown = token_response(secure.base_url, assertion(stranger, _token_url(secure)), "system/*.rs")
    forged = token_response(secure.base_url, assertion(PLAN, _token_url(secure), key=RSAKey.generate_key(2048)),
                            "system/*.rs")
    assert unknown.status_code == forged.status_code == 401
    assert unknown.content == forged.content
    assert unknown.headers["www-authenticate"] == forged.headers["www-authenticate"]


def test_random_kids_do_not_make_the_server_fetch_a_jwks_url_each(secure: LiveServer,
                                                                  jwks_server: JwksServer) -> None:
    impostor = RSAKey.generate_key(2048)
    for _ in range(30):
        forged = assertion(REMOTE, _token_url(secure), header={"kid": uuid.uuid4().hex}, key=impostor)
        assert token_response(secure.base_url, forged, "system/*.rs").status_code == 401
    assert 1 <= jwks_server.fetches <= 2
    # the cached key still serves the real client
    assert token_response(secure.base_url, assertion(REMOTE, _token_url(secure)), "system/*.rs").status_code == 200
    assert jwks_server.fetches <= 2


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A secured server with small token-endpoint limits and /metrics open to loopback scrapers."""
    data_dir: Path = tmp_path_factory.mktemp("tuned-server")
    register(data_dir, PLAN)
    server = LiveServer(data_dir, {"FHIR_CLR_TOKEN_RATE_BURST": "3", "FHIR_CLR_TOKEN_RATE_PER_MINUTE": "6",
                                   "FHIR_CLR_TOKEN_SOURCE_RATE_BURST": "12",
                                   "FHIR_CLR_TOKEN_SOURCE_RATE_PER_MINUTE": "6",
                                   "FHIR_CLR_METRICS_LOOPBACK_WITHOUT_TOKEN": "true"}, dev=False)
    server.start()
    yield server
    server.stop()


def test_token_endpoint_rate_limits(tuned: LiveServer) -> None:
    statuses = [token_response(tuned.base_url, assertion(PLAN, _token_url(tuned)), "system/*.rs")
                for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert int(statuses[-1].headers["retry-after"]) >= 1
    assert statuses[-1].json()["error"] == "temporarily_unavailable"
    # forged requests from this address use up its own budget (12 in a burst), not the client's
    garbage = [token_response(tuned.base_url, "not.a.jwt", "system/*.rs") for _ in range(10)]
    codes = [r.status_code for r in garbage]
    assert 429 in codes and set(codes[:codes.index(429)]) == {401}
    assert int(garbage[codes.index(429)].headers["retry-after"]) >= 1


# ---- finding 11: /metrics, /docs and /openapi.json need a token ----------------------------------------


def test_docs_and_metrics_need_a_token(secure: LiveServer) -> None:
    for path in ("/metrics", "/docs", "/openapi.json"):
        refused = httpx.get(f"{secure.base_url}{path}")
        assert refused.status_code == 401, path
        assert refused.json()["issue"][0]["code"] == "login"
    for path in ("/healthz", "/readyz", "/metadata"):
        assert httpx.get(f"{secure.base_url}{path}").status_code == 200, path
    with http_for(secure.base_url, access_token(secure.base_url, PROVIDER)) as http:
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/docs").status_code == 200
        assert http.get("/metrics").status_code == 403  # plan-wide counts: the plan's alone
    with http_for(secure.base_url, access_token(secure.base_url, PLAN_READER)) as http:
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "fhir_clr_http_request_duration_seconds" in metrics.text


def test_metrics_on_loopback_without_a_token_when_configured(tuned: LiveServer) -> None:
    assert httpx.get(f"{tuned.base_url}/metrics").status_code == 200
    assert httpx.get(f"{tuned.base_url}/openapi.json").status_code == 401
