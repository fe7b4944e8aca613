"""Lightweight routing for the hot FHIR REST routes.

FastAPI's per-request dependency solving and parameter validation buy nothing for handlers that take the
raw request and path strings, and cost a noticeable share of each request (≈ 17 % of a create under load).
These routes are plain Starlette routes; the app's exception handlers and middleware apply unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[..., Awaitable[Response]]


class PlainRouter:
    """Collects Starlette routes whose handlers receive the request and the path parameters as keywords."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``method path`` (routes match in registration order)."""

        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                return await handler(request, **request.path_params)

            endpoint.__name__ = handler.__name__
            self.routes.append(Route(path, endpoint, methods=[method], name=handler.__name__))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        """``GET`` (and ``HEAD``) route."""
        return self.add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        """``POST`` route."""
        return self.add("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        """``PUT`` route."""
        return self.add("PUT", path)

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        """``PATCH`` route."""
        return self.add("PATCH", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        """``DELETE`` route."""
        return self.add("DELETE", path)


def install(app: Any, router: PlainRouter) -> None:
    """Append the router's routes to ``app`` (after the routes already registered)."""
    app.router.routes.extend(router.routes)
