"""Access logging as a plain ASGI middleware (cheap), without query strings or bodies: query strings can
carry PHI (names, CINs), so only method, path, status and duration are logged."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("fhir_clr.access")


class AccessLogMiddleware:
    """Logs one structured line per HTTP request at INFO level."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
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
            log.info("request", extra={"method": scope["method"], "path": scope["path"], "status": status,
                                       "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
