"""What the security middleware needs from the layers above it, as small protocols the composition root
(:func:`fhir_clr.app.create_app`) fills in: the console's sign-in session (:mod:`fhir_clr.console.session`) and
the API's FHIR error response (:func:`fhir_clr.api.responses.error_response`). So ``auth`` imports neither the
console nor the API."""

from __future__ import annotations

from typing import Any, Protocol

from fhir_clr.errors import FhirError

Asgi = Any
"""An ASGI application (``await app(scope, receive, send)``)."""


class BrowserSessions(Protocol):
    """The console's paths and its cookie session, as authentication sees them."""

    def is_console(self, path: str) -> bool:
        """True for a path of the console."""

    def is_public(self, path: str) -> bool:
        """True for a console path served before sign-in (the sign-in page, static assets)."""

    def cookie_token(self, scope: dict[str, Any]) -> str | None:
        """The session token the request's cookie carries, if any."""

    def sign_in_redirect(self, scope: dict[str, Any]) -> Asgi:
        """The response sending a browser without a valid session to the sign-in page."""


class ErrorResponder(Protocol):
    """Renders a refusal (401, 403, 413, 429, 503) as the HTTP response the API answers with."""

    def __call__(self, error: FhirError) -> Asgi:
        """The response for ``error``."""
