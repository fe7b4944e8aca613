"""Outbound requests whose answer is read only up to a cap, so a hostile endpoint (a webhook receiver, a
client's JWKS URL) cannot make the server buffer an unbounded body."""

from __future__ import annotations

from typing import Any

import httpx


class ResponseTooLarge(Exception):
    """The endpoint's answer was longer than the cap (the rest was never read)."""


async def request_capped(http: httpx.AsyncClient, method: str, url: httpx.URL | str, *, limit: int,
                         **options: Any) -> tuple[httpx.Response, bytes]:
    """Send one request and return the response with at most ``limit`` bytes of its body; ResponseTooLarge when
    the endpoint sends more (the connection is then closed, not read to its end)."""
    async with http.stream(method, url, **options) as response:
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > limit:
                raise ResponseTooLarge(f"the answer exceeded {limit} bytes")
        return response, bytes(received)
