"""An httpx transport that connects only to addresses the policy vetted.

At every new connection the host is resolved once, every address is vetted
(:meth:`fhir_clr.outbound.policy.EndpointPolicy.addresses`), and the TCP connection goes to a vetted address:
the name is never looked up again between the check and the connect, so a DNS answer that changes in between
(DNS rebinding) cannot steer a request inside the network. Only the TCP connect is pinned: the request keeps
the name in its URL, so the Host header, TLS SNI and certificate verification are still for the name.

httpx has no setting for httpcore's network backend, so the transport rebuilds its httpcore connection pool
with one (httpcore's public ``network_backend`` argument); ``http`` and ``https`` get separate pools because
plain http is vetted more strictly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import anyio.to_thread
import httpcore
import httpx

from fhir_clr.outbound.addresses import IPAddress
from fhir_clr.outbound.policy import EndpointRefused

MAX_ADDRESSES_TRIED = 4
"""A host with many addresses gets at most this many connection attempts (each with the connect timeout)."""


class AddressVetter(Protocol):
    """Resolves a host once and returns the addresses that may be connected to (EndpointRefused if none)."""

    def __call__(self, host: str, port: int, *, plain_http: bool) -> list[IPAddress]: ...


class RefusedByPolicy(httpcore.ConnectError):
    """The connection was not attempted: the host's addresses break the policy (httpx raises it as the
    ``__cause__`` of an ``httpx.ConnectError``)."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects to the vetted addresses of a host instead of resolving it itself."""

    def __init__(self, vet: AddressVetter, *, plain_http: bool, network: httpcore.AsyncNetworkBackend) -> None:
        self.vet = vet
        self.plain_http = plain_http
        self.network = network

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        """Connect to the first reachable vetted address of ``host``."""
        try:
            addresses = await anyio.to_thread.run_sync(lambda: self.vet(host, port, plain_http=self.plain_http))
        except EndpointRefused as refused:
            raise RefusedByPolicy(str(refused)) from None
        failure: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return await self.network.connect_tcp(str(address), port, timeout=timeout,
                                                      local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # the vetter never returns an empty list
        raise failure

    async def sleep(self, seconds: float) -> None:
        """Sleep (used by httpcore between connection retries)."""
        await self.network.sleep(seconds)


class VettedTransport(httpx.AsyncBaseTransport):
    """Sends http and https requests over connections to vetted addresses only (no proxy, no environment)."""

    def __init__(self, vet: AddressVetter, *, limits: httpx.Limits | None = None,
                 network: httpcore.AsyncNetworkBackend | None = None) -> None:
        limits = limits or httpx.Limits()
        self._by_scheme = {scheme: _pinned(PinnedBackend(vet, plain_http=scheme == "http",
                                                         network=network or httpcore.AnyIOBackend()), limits)
                           for scheme in ("https", "http")}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the pool for its scheme."""
        transport = self._by_scheme.get(request.url.scheme)
        if transport is None:
            raise httpx.UnsupportedProtocol("Only http and https URLs are called", request=request)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for transport in self._by_scheme.values():
            await transport.aclose()


def _pinned(backend: PinnedBackend, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx version keeps its connection pool elsewhere; VettedTransport needs updating")
    transport._pool = httpcore.AsyncConnectionPool(  # httpx offers no network_backend setting of its own
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend)
    return transport
