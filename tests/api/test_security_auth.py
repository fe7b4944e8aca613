"""SMART Backend Services against a live, non-dev server: discovery, token endpoint (RS384/ES384 and every
refusal), bearer enforcement, scopes (v1 and v2), hardening headers and limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc.jwk import RSAKey

from tests.api.helpers import FHIR_JSON, patient, task
from tests.api.security_client import (
    RegisteredClient,
    access_token,
    assertion,
    http_for,
    new_client,
    register,
    start_secured,
    token_response,
)
from tests.conftest import LiveServer

PLAN = new_client("plan-app", "Organization/plan", "plan", ["system/*.cruds"])
CBO = new_client("cbo-app", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"], ec=True)
NARROW = new_client("narrow-app", "Organization/cbo-a", "servicing-provider", ["system/Task.rs"])
V1 = new_client("v1-app", "Organization/cbo-a", "servicing-provider", ["system/*.read"])
GONE = new_client("gone-app", "Organization/cbo-a", "servicing-provider", ["system/*.read"])


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server with authentication on and registered clients."""
    data_dir: Path = tmp_path_factory.mktemp("secure-server")
    server = start_secured(data_dir, PLAN, CBO, NARROW, V1, GONE, env={"FHIR_CLR_MAX_BODY_BYTES": "200000"})
    yield server
    server.stop()


def _token_url(server: LiveServer) -> str:
    return f"{server.base_url}/auth/token"


def test_discovery_and_capability_statement(secure: LiveServer) -> None:
    config = httpx.get(f"{secure.base_url}/.well-known/smart-configuration", headers={"Accept": "text/html"})
    assert config.status_code == 200 and config.headers["content-type"].startswith("application/json")
    body = config.json()
    assert body["token_endpoint"] == _token_url(secure)
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(body["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert body["grant_types_supported"] == ["client_credentials"]
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(body["capabilities"])
    security = httpx.get(f"{secure.base_url}/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]
    assert oauth["extension"][0] == {"url": "token", "valueUri": _token_url(secure)}


@pytest.mark.parametrize("client", [PLAN, CBO], ids=["RS384", "ES384"])
def test_token_happy_path(secure: LiveServer, client: RegisteredClient) -> None:
    started = time.perf_counter()
    response = token_response(secure.base_url, assertion(client, _token_url(secure)), "system/Patient.rs")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs" and "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"
    assert elapsed < 2.0
    with http_for(secure.base_url, body["access_token"]) as http:
        assert http.get("/Patient", params={"_count": 1}).status_code == 200


def _refused(secure: LiveServer, signed: str) -> httpx.Response:
    response = token_response(secure.base_url, signed, "system/*.rs")
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    return response


def test_expired_assertion_refused(secure: LiveServer) -> None:
    _refused(secure, assertion(PLAN, _token_url(secure), claims={"exp": int(time.time()) - 120}))


def test_assertion_too_far_ahead_refused(secure: LiveServer) -> None:
    _refused(secure, assertion(PLAN, _token_url(secure), claims={"exp": int(time.time()) + 3600}))


def test_replayed_jti_refused(secure: LiveServer) -> None:
    signed = assertion(PLAN, _token_url(secure))
    assert token_response(secure.base_url, signed, "system/*.rs").status_code == 200
    _refused(secure, signed)


def test_wrong_audience_refused(secure: LiveServer) -> None:
    _refused(secure, assertion(PLAN, "https://other.example.org/auth/token"))


def test_wrong_key_refused(secure: LiveServer) -> None:
    impostor = RSAKey.generate_key(2048)
    _refused(secure, assertion(PLAN, _token_url(secure), key=impostor))


def test_unknown_and_disabled_clients_refused(secure: LiveServer) -> None:
    stranger = new_client("stranger", "Organization/x", "plan", ["system/*.rs"])
    _refused(secure, assertion(stranger, _token_url(secure)))
    token = access_token(secure.base_url, GONE)
    subprocess.run([sys.executable, "-m", "fhir_clr.cli", "clients", "disable", GONE.client_id, "--data",
                    str(secure.data_dir)], check=True, capture_output=True)
    _refused(secure, assertion(GONE, _token_url(secure)))
    deadline = time.monotonic() + 10
    status = 200
    while time.monotonic() < deadline and status != 401:
        with http_for(secure.base_url, token) as http:
            status = http.get("/Patient").status_code
        time.sleep(0.5)
    assert status == 401  # tokens issued before the disable stop working within seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_alg_none_refused(secure: LiveServer) -> None:
    now = int(time.time())
    claims = {"iss": PLAN.client_id, "sub": PLAN.client_id, "aud": _token_url(secure), "exp": now + 60,
              "jti": f"none-{now}"}
    _refused(secure, f"{_b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}.{_b64(orjson.dumps(claims))}.")


def test_hs256_with_public_key_as_secret_refused(secure: LiveServer) -> None:
    # the classic key-confusion forgery: HMAC keyed with the client's public key (joserfc itself refuses to
    # build it, so it is signed by hand)
    now = int(time.time())
    claims = {"iss": PLAN.client_id, "sub": PLAN.client_id, "aud": _token_url(secure), "exp": now + 60,
              "jti": f"hs-{now}"}
    signing_input = f"{_b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': PLAN.key.kid}))}." \
                    f"{_b64(orjson.dumps(claims))}"
    for secret in (PLAN.key.as_pem(private=False), orjson.dumps(PLAN.key.as_dict(private=False))):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        _refused(secure, f"{signing_input}.{_b64(mac)}")


def test_token_request_errors(secure: LiveServer) -> None:
    bad_grant = httpx.post(f"{secure.base_url}/auth/token", data={"grant_type": "password"})
    assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "unsupported_grant_type"
    bad_scope = token_response(secure.base_url, assertion(PLAN, _token_url(secure)), "user/*.rs")
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    out_of_order = token_response(secure.base_url, assertion(PLAN, _token_url(secure)), "system/Task.sr")
    assert out_of_order.status_code == 400 and out_of_order.json()["error"] == "invalid_scope"


def test_missing_and_invalid_bearer_tokens(secure: LiveServer) -> None:
    missing = httpx.get(f"{secure.base_url}/Patient")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["issue"][0]["code"] == "login"
    forged = httpx.get(f"{secure.base_url}/Patient", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]


def test_scopes_v2_and_v1(secure: LiveServer) -> None:
    # the narrow client asks for more than it may have: it gets the intersection
    response = token_response(secure.base_url, assertion(NARROW, _token_url(secure)),
                              "system/Task.rs system/Patient.rs")
    assert response.json()["scope"] == "system/Task.rs"
    with http_for(secure.base_url, response.json()["access_token"]) as http:
        assert http.get("/Task").status_code == 200
        assert http.get("/Patient").status_code == 403
        refused = http.post("/Task", json=task(owner="Organization/cbo-a"), headers=FHIR_JSON)
        assert refused.status_code == 403 and refused.json()["issue"][0]["code"] == "forbidden"
    with http_for(secure.base_url, access_token(secure.base_url, V1)) as http:
        assert http.get("/Patient").status_code == 200
        assert http.post("/Patient", json=patient(), headers=FHIR_JSON).status_code == 403
    with http_for(secure.base_url, access_token(secure.base_url, PLAN, "system/Patient.c")) as http:
        assert http.post("/Patient", json=patient(), headers=FHIR_JSON).status_code == 201
        assert http.get("/Patient").status_code == 403


def test_hardening_headers_and_limits(secure: LiveServer) -> None:
    with http_for(secure.base_url, access_token(secure.base_url, PLAN)) as http:
        response = http.get("/Patient", params={"_count": 1})
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        big = {"resourceType": "Patient", "name": [{"text": "x" * 250_000}]}
        assert http.post("/Patient", json=big, headers=FHIR_JSON).status_code == 413
        deep: dict[str, object] = {"url": "http://example.org/x", "valueString": "v"}
        for _ in range(100):
            deep = {"url": "http://example.org/x", "extension": [deep]}
        nested = http.post("/Patient", json={"resourceType": "Patient", "extension": [deep]}, headers=FHIR_JSON)
        assert nested.status_code == 400 and nested.json()["issue"][0]["code"] == "structure"


def test_rate_limit(tmp_path: Path) -> None:
    register(tmp_path, PLAN)
    server = LiveServer(tmp_path, {"FHIR_CLR_RATE_LIMIT_PER_SECOND": "1", "FHIR_CLR_RATE_LIMIT_BURST": "3"},
                        dev=False)
    server.start()
    try:
        with http_for(server.base_url, access_token(server.base_url, PLAN)) as http:
            statuses = [http.get("/Patient", params={"_count": 1}) for _ in range(6)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and int(limited[0].headers["retry-after"]) >= 1
        assert limited[0].json()["issue"][0]["code"] == "throttled"
    finally:
        server.stop()
