"""One ASGI middleware for the resource server's cross-cutting security: security headers, request body size
limit (413), bearer-token authentication (401), per-client rate limit (429), the caller's access policy for
the engine, the audit record of each FHIR interaction, and the gate that lets only a few large bodies be
processed at once. Plain ASGI (no per-request task or body copy)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

from fhir_clr.auth.audit import classify
from fhir_clr.auth.clients import Role
from fhir_clr.auth.policy import OrganizationPolicy
from fhir_clr.auth.ratelimit import retry_after
from fhir_clr.auth.seams import BrowserSessions, ErrorResponder
from fhir_clr.auth.service import AuthServices
from fhir_clr.auth.tokens import SESSION_TYPE, TOKEN_TYPE, Caller, InvalidToken
from fhir_clr.errors import FhirError

PUBLIC_PATHS = frozenset({"/metadata", "/healthz", "/readyz", "/.well-known/smart-configuration", "/auth/token"})
"""Endpoints without PHI that answer without a token. ``/docs`` and ``/openapi.json`` need one (they map the
attack surface); ``/metrics`` needs a plan token (its counts are plan-wide), see ``metrics_allowed``."""
PUBLIC_GET_PATHS = frozenset({"/", "/console"})
"""Read without a token, GET only: the root's links and the console's redirect (``POST /`` is a transaction)."""
METRICS_PATH = "/metrics"
PUBLIC_BODY_BYTES = 64 * 1024
"""Largest body an endpoint without a token takes (token requests, console sign-in): callers who have not
authenticated get no share of the large-body slots."""
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


def metrics_allowed(caller: Caller) -> bool:
    """``/metrics`` counts cover every organization: only the plan, with a read scope on every type."""
    return caller.role is Role.PLAN and any(scope.resource_type == "*" and "r" in scope.letters
                                            for scope in caller.scopes.parsed)


def is_loopback(scope: dict[str, Any]) -> bool:
    """True when the request comes from a loopback address (after uvicorn's trusted proxy headers)."""
    client = scope.get("client")
    try:
        return client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class SecurityMiddleware:
    """See module docstring. ``dev`` skips authentication, rate limit and audit (loopback-only dev mode).
    Bodies above ``large_body_bytes`` (by Content-Length, or once that much has arrived) wait for one of
    ``large_body_concurrency`` slots, taken after authentication, so that their parsing and validation
    cannot add up past what the process can hold. ``metrics_on_loopback`` serves ``/metrics`` without a token
    to loopback callers (a scraper on the same host). ``sessions`` tells console paths and reads the console's
    session cookie; ``error_response`` renders each refusal (both handed in by the app, see
    :mod:`fhir_clr.auth.seams`)."""

    def __init__(self, app: Any, *, sessions: BrowserSessions, error_response: ErrorResponder, max_body_bytes: int,
                 dev: bool, large_body_bytes: int, large_body_concurrency: int,
                 metrics_on_loopback: bool = False) -> None:
        self.app = app
        self.sessions = sessions
        self.error_response = error_response
        self.max_body_bytes = max_body_bytes
        self.dev = dev
        self.large_body_bytes = large_body_bytes
        self.large_bodies = asyncio.Semaphore(large_body_concurrency)
        self.metrics_on_loopback = metrics_on_loopback

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

        public = path in PUBLIC_PATHS or self.sessions.is_public(path) or (
            path in PUBLIC_GET_PATHS and scope["method"] in ("GET", "HEAD")) or (
            path == METRICS_PATH and self.metrics_on_loopback and is_loopback(scope))
        limit = self.max_body_bytes if self.dev or not public else min(self.max_body_bytes, PUBLIC_BODY_BYTES)
        length = _header(scope, b"content-length")
        declared = int(length) if length is not None and length.isdigit() else 0
        if declared > limit:
            await self.error_response(BodyTooLarge(limit))(scope, receive, send_secured)
            return
        gate = _BodyGate(self.large_bodies, self.large_body_bytes)
        receive = self._limited(receive, limit, gate)
        try:
            if self.dev or public:
                if declared > gate.threshold:
                    await gate.enter(declared)
                await self.app(scope, receive, send_secured)
                return
            await self._serve_authenticated(scope, receive, send_secured, gate, declared, lambda: status)
        finally:
            gate.leave()

    async def _serve_authenticated(self, scope: dict[str, Any], receive: Any, send: Any, gate: _BodyGate,
                                   declared: int, status: Callable[[], int]) -> None:
        """Authenticate, check the caller may use the path, serve, and record the audit event."""
        path = scope["path"]
        auth: AuthServices | None = getattr(scope["app"].state, "auth", None)
        if auth is None:  # fail closed: never serve PHI before the authorization server is up
            await self.error_response(FhirError(503, "transient", "Starting up; retry later",
                                                headers={"Retry-After": "5"}))(scope, receive, send)
            return
        refusal = await self._authenticate(scope, auth)
        if refusal is not None:
            if self.sessions.is_console(path) and refusal.status_code == 401:
                refusal = self.sessions.sign_in_redirect(scope)
            await refusal(scope, receive, send)
            return
        caller = scope["state"]["caller"]
        if path == METRICS_PATH and not metrics_allowed(caller):
            refused = FhirError(403, "forbidden", "/metrics needs a plan client with a read scope on every type "
                                "(e.g. system/*.read)")
            await self.error_response(refused)(scope, receive, send)
            return
        if declared > gate.threshold:
            await gate.enter(declared)
        try:
            await self.app(scope, receive, send)
        finally:
            interaction = classify(scope["method"], path)
            if interaction is not None:
                auth.audit.record(caller, interaction, scope.get("query_string", b"").decode("latin-1"), status())

    async def _authenticate(self, scope: dict[str, Any], auth: AuthServices) -> Any:
        """Put the caller and its policy into the request state, or return the refusal response."""
        token, token_type = bearer_token(_header(scope, b"authorization")), TOKEN_TYPE
        if token is None and self.sessions.is_console(scope["path"]):
            token, token_type = self.sessions.cookie_token(scope), SESSION_TYPE
        if token is None:
            return self.error_response(FhirError(401, "login", "An access token is required (SMART Backend Services)",
                                                 headers={"WWW-Authenticate": CHALLENGE}))
        try:
            caller = auth.tokens.verify(token, token_type)
        except InvalidToken:
            caller = None
        if caller is None or not await auth.client_enabled(caller.client_id):
            return self.error_response(FhirError(401, "login", "The access token is invalid or expired", headers={
                "WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'}))
        wait = auth.limiter.acquire(caller.client_id)
        if wait > 0:
            return self.error_response(FhirError(429, "throttled", "Too many requests; slow down",
                                                 headers={"Retry-After": retry_after(wait)}))
        state = scope.setdefault("state", {})
        state["caller"] = caller
        state["access"] = OrganizationPolicy(caller, scope["app"].state.services.registry)
        return None

    @staticmethod
    def _limited(receive: Any, limit: int, gate: _BodyGate) -> Any:
        received = 0

        async def receive_limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                if received > gate.threshold:
                    await gate.enter(received)
            return message
        return receive_limited


class _BodyGate:
    """One request's place at the large-body gate: it takes a slot once the body is known to be large (and
    the request may go on), and gives it back when the request is done."""

    __slots__ = ("held", "slots", "threshold")

    def __init__(self, slots: asyncio.Semaphore, threshold: int) -> None:
        self.slots = slots
        self.threshold = threshold
        self.held = False

    async def enter(self, size: int) -> None:
        """Called with the body size known so far (declared, or received): above the threshold, wait for a
        slot (once)."""
        if size > self.threshold and not self.held:
            await self.slots.acquire()
            self.held = True

    def leave(self) -> None:
        """Give the slot back, if one was taken."""
        if self.held:
            self.held = False
            self.slots.release()
