"""A registered client for benchmarking a secured server: an EC key registered with ``fhir-clr clients add``,
a signed client assertion and the SMART Backend Services token request (synthetic data only)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class BenchClient:
    """A client of ``role`` acting for ``organization`` with ``scopes`` (default: the plan, every type, all
    interactions, so it sees everything it creates)."""

    client_id: str = "bench-plan"
    organization: str = "Organization/bench-plan"
    role: str = "plan"
    scopes: tuple[str, ...] = ("system/*.cruds",)
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-384", auto_kid=True))

    def register(self, data_dir: Path) -> None:
        """Register the client in ``data_dir`` through the CLI (inline public JWKS)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        jwks = data_dir / f"{self.client_id}.jwks.json"
        jwks.write_bytes(orjson.dumps({"keys": [self.key.as_dict(private=False)]}))
        args = [sys.executable, "-m", "fhir_clr.cli", "clients", "add", self.client_id, "--data", str(data_dir),
                "--organization", self.organization, "--role", self.role, "--jwks", str(jwks)]
        for scope in self.scopes:
            args += ["--scope", scope]
        subprocess.run(args, check=True, capture_output=True)

    def token(self, base_url: str) -> str:
        """A fresh access token from the server at ``base_url``."""
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": f"{base_url}/auth/token",
                  "exp": now + 240, "jti": uuid.uuid4().hex}
        signed = jwt.encode({"alg": "ES384", "kid": self.key.kid, "typ": "JWT"}, claims, self.key,
                            algorithms=["ES384"])
        response = httpx.post(f"{base_url}/auth/token", timeout=30.0, data={
            "grant_type": "client_credentials", "scope": " ".join(self.scopes),
            "client_assertion_type": JWT_BEARER, "client_assertion": signed})
        response.raise_for_status()
        return response.json()["access_token"]
