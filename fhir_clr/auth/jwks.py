"""Client public keys: from the inline JWKS, or fetched from the client's JWKS URL and cached (at most the
URL's ``Cache-Control: max-age`` and at most ``max_ttl`` seconds). JWKS URLs are fetched over the outbound guard's
vetted transport (:mod:`fhir_clr.outbound.transport`), like webhooks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from fhir_clr.auth.clients import ClientRecord
from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.outbound.transport import VettedTransport

KTY_FOR_ALG = {"RS384": "RSA", "ES384": "EC"}
MAX_AGE = re.compile(r"max-age=(\d+)")


class KeyLookupError(Exception):
    """No usable key for an assertion (unknown kid, ambiguous key set, unreachable JWKS URL)."""


class JwksResolver:
    """Finds the one client key that may verify an assertion signed with ``alg`` and ``kid``."""

    def __init__(self, *, max_ttl: float = 300.0, timeout: float = 5.0,
                 policy: EndpointPolicy | None = None) -> None:
        self.max_ttl = max_ttl
        self.timeout = timeout
        vet = (policy or EndpointPolicy()).addresses
        self.transport: Callable[[], httpx.AsyncBaseTransport] = lambda: VettedTransport(vet)
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def key_for(self, client: ClientRecord, alg: str, kid: str | None) -> dict[str, Any]:
        """The JWK (public members) that verifies this client's assertion. A cached URL set is refreshed
        once when the ``kid`` is not in it (key rotation)."""
        if client.jwks is not None:
            return _select(client.jwks.get("keys", []), alg, kid)
        assert client.jwks_url is not None
        keys = await self._fetch(client.jwks_url, refresh=False)
        try:
            return _select(keys, alg, kid)
        except KeyLookupError:
            return _select(await self._fetch(client.jwks_url, refresh=True), alg, kid)

    async def _fetch(self, url: str, *, refresh: bool) -> list[dict[str, Any]]:
        cached = self._cache.get(url)
        if cached and not refresh and cached[0] > time.monotonic():
            return cached[1]
        try:
            async with httpx.AsyncClient(transport=self.transport(), timeout=self.timeout, follow_redirects=False,
                                         trust_env=False) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json().get("keys")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, AttributeError):
            raise KeyLookupError("the client's JWKS URL could not be read") from None
        if not isinstance(keys, list):
            raise KeyLookupError("the client's JWKS URL did not return a key set")
        self._cache[url] = (time.monotonic() + _ttl(response.headers.get("cache-control", ""), self.max_ttl), keys)
        return keys


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
