"""Jinja2 rendering of console pages, with the console's Content-Security-Policy (no inline script or style)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

CONSOLE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
"""Pages load only the console stylesheet; charts are inline SVG drawn with presentation attributes."""

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _day(value: Any) -> str:
    """A FHIR date or dateTime shown as its calendar day (``2026-11-23``); empty for nothing."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10] if value else ""


def _moment(value: Any) -> str:
    """A FHIR dateTime shown to the minute (``2026-11-23 14:05``); a bare date stays a date."""
    text = value.isoformat() if isinstance(value, datetime | date) else str(value or "")
    return text[:16].replace("T", " ") if len(text) > 10 else text


templates.env.filters["day"] = _day
templates.env.filters["moment"] = _moment


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """The page ``name`` rendered with ``context`` (plus the request and the navigation's current page)."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["content-security-policy"] = CONSOLE_CSP
    return response
