"""Test helpers for the secured server: client keys, signed client assertions, registration through the CLI,
and token requests (synthetic data only)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import LiveServer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class RegisteredClient:
    """A registered client and its private key."""

    client_id: str
    organization: str
    role: str
    scopes: list[str]
    key: RSAKey | ECKey

    @property
    def alg(self) -> str:
        """The assertion algorithm matching the key type."""
        return "RS384" if isinstance(self.key, RSAKey) else "ES384"


def new_client(client_id: str, organization: str, role: str, scopes: list[str], *,
               ec: bool = False) -> RegisteredClient:
    """A client with a freshly generated key (RSA 2048 or EC P-384)."""
    key = ECKey.generate_key("P-384", auto_kid=True) if ec else RSAKey.generate_key(2048, auto_kid=True)
    return RegisteredClient(client_id, organization, role, scopes, key)


def register(data_dir: Path, client: RegisteredClient) -> None:
    """Register ``client`` with ``fhir-clr clients add`` (inline public JWKS)."""
    jwks_file = data_dir / f"{client.client_id}.jwks.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    jwks_file.write_bytes(orjson.dumps({"keys": [client.key.as_dict(private=False)]}))
    args = [sys.executable, "-m", "fhir_clr.cli", "clients", "add", client.client_id, "--data", str(data_dir),
            "--organization", client.organization, "--role", client.role, "--jwks", str(jwks_file)]
    for scope in client.scopes:
        args += ["--scope", scope]
    subprocess.run(args, check=True, capture_output=True)


def assertion(client: RegisteredClient, audience: str, *, header: dict[str, Any] | None = None,
              claims: dict[str, Any] | None = None, key: Any = None, algorithms: list[str] | None = None) -> str:
    """A signed client assertion; ``header``/``claims`` override the defaults, ``key`` signs instead."""
    now = int(time.time())
    body = {"iss": client.client_id, "sub": client.client_id, "aud": audience, "exp": now + 240,
            "jti": uuid.uuid4().hex, **(claims or {})}
    head = {"alg": client.alg, "kid": client.key.kid, "typ": "JWT", **(header or {})}
    return jwt.encode(head, body, key or client.key, algorithms=algorithms or [head["alg"]])


def token_response(base_url: str, signed: str, scope: str) -> httpx.Response:
    """POST the token request."""
    return httpx.post(f"{base_url}/auth/token", data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion_type": JWT_BEARER,
        "client_assertion": signed}, timeout=10.0)


def access_token(base_url: str, client: RegisteredClient, scope: str | None = None) -> str:
    """An access token for ``client`` (all its scopes unless ``scope`` is given)."""
    response = token_response(base_url, assertion(client, f"{base_url}/auth/token"),
                              scope or " ".join(client.scopes))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def http_for(base_url: str, token: str) -> httpx.Client:
    """An HTTP client sending ``token``."""
    return httpx.Client(base_url=base_url, timeout=30.0, headers={
        "Accept": "application/fhir+json", "Authorization": f"Bearer {token}"})


def start_secured(data_dir: Path, *clients: RegisteredClient, env: dict[str, str] | None = None) -> LiveServer:
    """Register ``clients`` and start a secured (non-dev) live server on ``data_dir``."""
    for client in clients:
        register(data_dir, client)
    server = LiveServer(data_dir, env, dev=False)
    server.start()
    return server
