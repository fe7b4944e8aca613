"""Access logging and request metrics as a plain ASGI middleware (cheap), without query strings or bodies: query
strings can carry PHI (names, CINs), so only method, path, status and duration are logged, and the metrics
label requests by route template only."""

from __future__ import annotations

import logging
import time
from typing import Any

from fhir_clr.observability.metrics import HTTP_REQUESTS, route_template

log = logging.getLogger("fhir_clr.access")


def route_label(path: str, status: int) -> str:
    """The metrics label of a request: its route template, or ``/{unmatched}`` for a 404 that names an
    operation or keyword no route has (so unknown paths cannot add labels)."""
    template = route_template(path)
    if status == 404 and any(part.startswith(("$", "_")) for part in template.split("/")):
        return "/{unmatched}"
    return template


class AccessLogMiddleware:
    """Logs one structured line per HTTP request at INFO level and records its duration in the metrics."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            path = scope["path"]
            HTTP_REQUESTS.labels(scope["method"], route_label(path, status), f"{status // 100}xx").observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"method": scope["method"], "path": path, "status": status,
                                           "duration_ms": round(elapsed * 1000, 2)})
