"""Structured (JSON lines) logging. Records carry only the fields we put in ``extra``: never bodies,
query strings or exception messages that could quote PHI."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

QUIET_LOGGERS = ("httpx", "httpcore")
"""Their INFO/DEBUG lines print whole request URLs (a webhook's or JWKS URL's query may hold a secret)."""
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send JSON log lines to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
