"""Client public keys: from the inline JWKS, or fetched from the client's JWKS URL and cached (at most the
URL's ``Cache-Control: max-age`` and at most ``max_ttl`` seconds). JWKS URLs are fetched over the outbound guard's
vetted transport (:mod:`fhir_clr.outbound.transport`), like webhooks.

A JWKS URL is never fetched more often than once per ``min_refetch`` seconds, whatever the assertions say:
an unknown ``kid`` (a key rotation, or a forger's random one) refreshes the set only once that interval has
passed since the last fetch, a failed fetch is not retried sooner, and concurrent lookups of one URL share
one fetch. A client that rotates its key may so wait up to ``min_refetch`` seconds for the new key."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from fhir_clr.auth.clients import ClientRecord
from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.outbound.transport import VettedTransport

KTY_FOR_ALG = {"RS384": "RSA", "ES384": "EC"}
MAX_AGE = re.compile(r"max-age=(\d+)")


class KeyLookupError(Exception):
    """No usable key for an assertion (unknown kid, ambiguous key set, unreachable JWKS URL)."""


@dataclass
class _CachedSet:
    """What is known of one JWKS URL: its keys (None until a fetch succeeded), until when they are fresh, when
    it was last fetched (successfully or not), and the lock that lets one lookup fetch at a time."""

    keys: list[dict[str, Any]] | None = None
    fresh_until: float = 0.0
    fetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksResolver:
    """Finds the one client key that may verify an assertion signed with ``alg`` and ``kid``."""

    def __init__(self, *, max_ttl: float = 300.0, min_refetch: float = 60.0, timeout: float = 5.0,
                 policy: EndpointPolicy | None = None) -> None:
        self.max_ttl = max_ttl
        self.min_refetch = min_refetch
        self.timeout = timeout
        vet = (policy or EndpointPolicy()).addresses
        self.transport: Callable[[], httpx.AsyncBaseTransport] = lambda: VettedTransport(vet)
        self._cache: dict[str, _CachedSet] = {}

    async def key_for(self, client: ClientRecord, alg: str, kid: str | None) -> dict[str, Any]:
        """The JWK (public members) that verifies this client's assertion. A URL's set is fetched when it is
        stale or lacks the ``kid``, but never sooner than ``min_refetch`` seconds after the last fetch."""
        if client.jwks is not None:
            return _select(client.jwks.get("keys", []), alg, kid)
        assert client.jwks_url is not None
        cached = self._cache.setdefault(client.jwks_url, _CachedSet())
        if cached.keys is not None and cached.fresh_until > time.monotonic():
            try:
                return _select(cached.keys, alg, kid)
            except KeyLookupError:
                pass  # maybe a rotated key: refresh below, if the interval allows
        async with cached.lock:
            if time.monotonic() - cached.fetched_at >= self.min_refetch:
                await self._fetch(client.jwks_url, cached)
        if cached.keys is None:
            raise KeyLookupError("the client's JWKS URL could not be read")
        return _select(cached.keys, alg, kid)

    async def _fetch(self, url: str, cached: _CachedSet) -> None:
        """Fetch ``url`` into ``cached``; a failure keeps the previous keys (and counts as a fetch)."""
        cached.fetched_at = time.monotonic()
        try:
            async with httpx.AsyncClient(transport=self.transport(), timeout=self.timeout, follow_redirects=False,
                                         trust_env=False) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json().get("keys")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, AttributeError):
            return
        if not isinstance(keys, list):
            return
        cached.keys = keys
        cached.fresh_until = time.monotonic() + _ttl(response.headers.get("cache-control", ""), self.max_ttl)


def _ttl(cache_control: str, max_ttl: float) -> float:
    if "no-store" in cache_control or "no-cache" in cache_control:
        return 0.0
    found = MAX_AGE.search(cache_control)
    return min(float(found.group(1)), max_ttl) if found else max_ttl


def _select(keys: list[Any], alg: str, kid: str | None) -> dict[str, Any]:
    kty = KTY_FOR_ALG[alg]
    usable = [k for k in keys if isinstance(k, dict) and k.get("kty") == kty and k.get("alg") in (None, alg)
              and k.get("use") in (None, "sig")]
    if kid is not None:
        usable = [k for k in usable if k.get("kid") == kid]
    if len(usable) != 1:
        raise KeyLookupError("no single registered key matches the assertion's kid and algorithm")
    return {name: value for name, value in usable[0].items() if name not in ("d", "p", "q", "dp", "dq", "qi")}
