"""A third-party client completes the SMART Backend Services flow against the live server: Authlib's OAuth 2
client with ``private_key_jwt`` (RS384) obtains the token, fhirpy uses it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fhirpy import AsyncFHIRClient

from tests.api.helpers import patient
from tests.api.security_client import new_client, register
from tests.conftest import LiveServer

CLIENT = new_client("third-party", "Organization/plan", "plan", ["system/Patient.cruds", "system/Task.rs"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_authlib_and_fhirpy(tmp_path: Path) -> None:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    register(tmp_path, CLIENT)
    server = LiveServer(tmp_path, dev=False)
    server.start()
    try:
        discovery = httpx.get(f"{server.base_url}/.well-known/smart-configuration").json()
        token_endpoint = discovery["token_endpoint"]
        async with AsyncOAuth2Client(CLIENT.client_id, CLIENT.key.as_pem(private=True),
                                     token_endpoint_auth_method="private_key_jwt",
                                     scope="system/Patient.cruds") as oauth:
            # SMART caps the assertion lifetime at 5 minutes (Authlib's default is an hour)
            oauth.register_client_auth_method(PrivateKeyJWT(token_endpoint, headers={"kid": CLIENT.key.kid},
                                                            claims={"exp": int(time.time()) + 240}, alg="RS384"))
            token = await oauth.fetch_token(token_endpoint, grant_type="client_credentials")
        assert token["token_type"].lower() == "bearer" and token["expires_in"] <= 300
        assert token["scope"] == "system/Patient.cruds"
        fhir = AsyncFHIRClient(server.base_url, authorization=f"Bearer {token['access_token']}")
        created = fhir.resource("Patient", **patient(family="Thirdparty"))
        await created.save()
        found = await fhir.resources("Patient").search(family="Thirdparty").fetch()
        assert [p.id for p in found] == [created.id]
    finally:
        server.stop()
