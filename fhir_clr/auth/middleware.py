"""One ASGI middleware for the resource server's cross-cutting security: security headers, request body size
limit (413), bearer-token authentication (401), per-client rate limit (429), the caller's access policy for
the engine, and the audit record of each FHIR interaction. Plain ASGI (no per-request task or body copy)."""

from __future__ import annotations

from typing import Any

from fhir_clr.api.responses import error_response
from fhir_clr.auth.audit import classify
from fhir_clr.auth.policy import OrganizationPolicy
from fhir_clr.auth.ratelimit import retry_after
from fhir_clr.auth.service import AuthServices
from fhir_clr.auth.tokens import SESSION_TYPE, TOKEN_TYPE, InvalidToken
from fhir_clr.console import session
from fhir_clr.errors import FhirError

PUBLIC_PATHS = frozenset({"/metadata", "/healthz", "/readyz", "/.well-known/smart-configuration", "/auth/token"})
"""Endpoints without PHI that answer without a token."""
NON_PHI_PATHS = PUBLIC_PATHS | {"/docs", "/openapi.json", "/metrics"}
"""``/metrics`` carries counts and latencies labelled by route template only (no ids, no PHI)."""
PUBLIC_GET_PATHS = frozenset({"/", "/console"})
"""Read without a token, GET only: the root's links and the console's redirect (``POST /`` is a transaction)."""
BASE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer")]
CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
CHALLENGE = 'Bearer realm="fhir-clr"'


class BodyTooLarge(FhirError):
    """The request body exceeds the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "too-costly", f"The request body exceeds {limit} bytes")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (scheme compared case-insensitively)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class SecurityMiddleware:
    """See module docstring. ``dev`` skips authentication, rate limit and audit (loopback-only dev mode)."""

    def __init__(self, app: Any, *, max_body_bytes: int, dev: bool) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.dev = dev

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        tls = scope.get("scheme") == "https"
        status = 500

        async def send_secured(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in BASE_HEADERS if h[0] not in names]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if not content_type.startswith(b"text/html"):
                    headers.append(CSP)
                if path not in ("/metadata", "/.well-known/smart-configuration") and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if tls:
                    headers.append(HSTS)
                message = {**message, "headers": headers}
            await send(message)

        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await error_response(BodyTooLarge(self.max_body_bytes))(scope, receive, send_secured)
            return
        receive = self._limited(receive)
        if (self.dev or path in NON_PHI_PATHS or session.is_public(path)
                or (path in PUBLIC_GET_PATHS and scope["method"] in ("GET", "HEAD"))):
            await self.app(scope, receive, send_secured)
            return
        auth: AuthServices | None = getattr(scope["app"].state, "auth", None)
        if auth is None:  # fail closed: never serve PHI before the authorization server is up
            await error_response(FhirError(503, "transient", "Starting up; retry later",
                                                     headers={"Retry-After": "5"}))(scope, receive, send_secured)
            return
        refusal = await self._authenticate(scope, auth)
        if refusal is not None:
            if session.is_console(path) and refusal.status_code == 401:
                refusal = session.sign_in_redirect(scope)
            await refusal(scope, receive, send_secured)
            return
        caller = scope["state"]["caller"]
        try:
            await self.app(scope, receive, send_secured)
        finally:
            interaction = classify(scope["method"], path)
            if interaction is not None:
                auth.audit.record(caller, interaction, scope.get("query_string", b"").decode("latin-1"), status)

    async def _authenticate(self, scope: dict[str, Any], auth: AuthServices) -> Any:
        """Put the caller and its policy into the request state, or return the refusal response."""
        token, token_type = bearer_token(_header(scope, b"authorization")), TOKEN_TYPE
        if token is None and session.is_console(scope["path"]):
            token, token_type = session.cookie_token(scope), SESSION_TYPE
        if token is None:
            return error_response(FhirError(401, "login", "An access token is required (SMART Backend Services)",
                                            headers={"WWW-Authenticate": CHALLENGE}))
        try:
            caller = auth.tokens.verify(token, token_type)
        except InvalidToken:
            caller = None
        if caller is None or not await auth.client_enabled(caller.client_id):
            return error_response(FhirError(401, "login", "The access token is invalid or expired", headers={
                "WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'}))
        wait = auth.limiter.acquire(caller.client_id)
        if wait > 0:
            return error_response(FhirError(429, "throttled", "Too many requests; slow down",
                                            headers={"Retry-After": retry_after(wait)}))
        state = scope.setdefault("state", {})
        state["caller"] = caller
        state["access"] = OrganizationPolicy(caller, scope["app"].state.services.registry)
        return None

    def _limited(self, receive: Any) -> Any:
        received = 0
        limit = self.max_body_bytes

        async def receive_limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message
        return receive_limited
