"""The SMART Backend Services endpoints: discovery (``/.well-known/smart-configuration``) and the token
endpoint (``POST /auth/token``, client_credentials with private_key_jwt)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.auth.assertion import ASSERTION_ALGS, ClientAuthError
from fhir_clr.auth.ratelimit import retry_after
from fhir_clr.auth.scopes import ScopeError, grant
from fhir_clr.auth.tokens import Caller
from fhir_clr.errors import FhirError

log = logging.getLogger(__name__)

router = APIRouter()

TOKEN_PATH = "/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SCOPES_SUPPORTED = ["system/*.rs", "system/*.cruds", "system/Task.cruds", "system/ServiceRequest.cruds",
                    "system/Patient.rs", "system/*.read", "system/*.write", "system/*.*"]


def token_url(base: str) -> str:
    """The token endpoint's absolute URL under a base URL."""
    return f"{base.rstrip('/')}{TOKEN_PATH}"


def _base(request: Request) -> str:
    """The configured public base URL (always set with authentication on, see ``Settings.check_secured``);
    derived from the request only in dev mode, where no token is ever issued."""
    configured = request.app.state.services.settings.base_url
    return (configured or str(request.base_url)).rstrip("/")


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers={**NO_STORE, **(headers or {})})


def _error(status: int, error: str, description: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_client"'} if status == 401 else None
    return _json({"error": error, "error_description": description}, status, headers)


def _throttled(wait: float) -> Response:
    return _json({"error": "temporarily_unavailable", "error_description": "too many token requests; retry "
                  "after the number of seconds in Retry-After"}, 429, {"Retry-After": retry_after(wait)})


@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> Response:
    """SMART discovery (always JSON, whatever ``Accept`` says)."""
    return Response(orjson.dumps(smart_configuration_document(_base(request))), media_type="application/json")


def smart_configuration_document(base: str) -> dict[str, Any]:
    """The discovery document for a server at ``base``."""
    return {
        "token_endpoint": token_url(base),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


@router.post(TOKEN_PATH)
async def token(request: Request) -> Response:
    """Exchange a signed client assertion for an access token (no refresh token). Each remote address has a
    request budget charged before anything is parsed; each client a token budget charged once its assertion
    verifies (so forged assertions naming a client cannot use up that client's budget)."""
    auth = request.app.state.auth
    if auth is None:
        raise FhirError(404, "not-found", "Authentication is disabled in dev mode")
    wait = auth.token_sources.acquire(request.client.host if request.client else "")
    if wait > 0:
        return _throttled(wait)
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error(400, "invalid_request", "send application/x-www-form-urlencoded")
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if fields.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type", "only client_credentials is supported")
    if fields.get("client_assertion_type") != JWT_BEARER or not fields.get("client_assertion"):
        return _error(400, "invalid_request", "a client_assertion of type jwt-bearer is required")
    try:
        client = await auth.verifier.verify(fields["client_assertion"], {token_url(_base(request))})
    except ClientAuthError as refused:
        log.info("token refused: %s", refused.reason)
        return _error(401, "invalid_client", str(refused))
    try:
        scopes = grant(fields.get("scope", ""), client.scopes)
    except ScopeError as bad:
        return _error(400, "invalid_scope", str(bad))
    if not scopes.granted:
        return _error(400, "invalid_scope", "none of the requested scopes is allowed for this client")
    wait = auth.token_clients.acquire(client.client_id)
    if wait > 0:
        return _throttled(wait)
    caller = Caller(client.client_id, client.organization, client.role, scopes)
    return _json({"access_token": auth.tokens.issue(caller), "token_type": "bearer",
                  "expires_in": auth.tokens.lifetime, "scope": scopes.text()})
