"""How a browser carries the API's access token to the console.

The console accepts the API's bearer tokens in the ``Authorization`` header (an SSO gateway in front of the
console can add them), or a console session in its cookie. The sign-in form opens a session in exchange for
a valid access token the user pastes: a token the server signs for the same client, organization, role and
scopes (so the same access policy applies), of a type the API refuses, lasting ``console_session_minutes``.
The client's registration is checked on every request, so disabling a client ends its sessions. The cookie is
HttpOnly, SameSite=Strict, scoped to ``/console`` and Secure over HTTPS. Console form posts must come from the
console's own origin (checked on top of the SameSite cookie)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.responses import RedirectResponse

COOKIE = "fhir_clr_console"
PREFIX = "/console"
PUBLIC = ("/console/login", "/console/static/")
"""Console paths without PHI, served before sign-in."""


def is_console(path: str) -> bool:
    """True for a path of the console."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def is_public(path: str) -> bool:
    """True for the sign-in page and the static assets."""
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


def cookie_token(scope: dict[str, Any]) -> str | None:
    """The session token of the console cookie, if the request carries one."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, token = part.strip().partition("=")
                if name == COOKIE and token:
                    return token
    return None


def same_origin(scope: Mapping[str, Any]) -> bool:
    """False for a form post another site made the browser send. Browsers say so in ``Sec-Fetch-Site``; without
    it, an ``Origin`` (other than ``null``) must name this host. A request with neither is not a browser's."""
    headers = dict(scope["headers"])
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None:
        return True
    return origin != b"null" and origin.split(b"://", 1)[-1] == headers.get(b"host", b"")


def safe_next(target: str | None) -> str:
    """A console path to return to after sign-in (anything else becomes the worklist)."""
    if target and is_console(target) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def sign_in_redirect(scope: dict[str, Any]) -> RedirectResponse:
    """A redirect to the sign-in page that comes back to the requested console page."""
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope["path"] + (f"?{query}" if query else "")
    return RedirectResponse(f"{PUBLIC[0]}?{urlencode({'next': target})}", status_code=303)
