"""Which URLs the server will call (server-side request forgery guard), for webhook endpoints and client JWKS
URLs.

A URL is read with the parser of the HTTP client that will call it (``httpx.URL``), so what is checked is what
is called. It must be an absolute ``https`` URL without credentials, whitespace or control characters, whose
host resolves only to public addresses (see :func:`fhir_clr.outbound.addresses.is_public`). Other addresses
are refused unless the operator allow-lists the host name or a network containing every address
(``FHIR_CLR_WEBHOOK_ALLOWED_HOSTS``, e.g. ``127.0.0.1,10.0.0.0/8``); only an allow-listed host may use plain
``http``. The check runs when a URL is registered and again at every connection, where
:mod:`fhir_clr.outbound.transport` connects to the very addresses it vetted.

Refusal messages name the host at most, never the path or query (which may carry a secret).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from fhir_clr.outbound.addresses import IPAddress, Resolver, ip_literal, is_public, system_resolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
"""Unicode categories refused anywhere in a URL: controls, format characters and every kind of space."""


class EndpointRefused(ValueError):
    """The URL breaks the policy; the message says how (naming the host at most)."""


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """The allow-list (host names and networks exempt from the public-address rule) and the resolver."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[Network, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_entries(cls, entries: Sequence[str], resolver: Resolver = system_resolver) -> EndpointPolicy:
        """Entries are host names, addresses or CIDR networks."""
        hosts, networks = set(), []
        for entry in (e.strip() for e in entries if e.strip()):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(frozenset(hosts), tuple(networks), resolver)

    @staticmethod
    def parse(url: str) -> httpx.URL:
        """``url`` as the HTTP client reads it; EndpointRefused unless it is an absolute http(s) URL with a host,
        no credentials and no whitespace or control characters. Resolves nothing."""
        if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
            raise EndpointRefused(f"The endpoint must be a URL of at most {MAX_URL_LENGTH} characters")
        if any(unicodedata.category(ch) in _INVISIBLE for ch in url):
            raise EndpointRefused("The endpoint must not contain whitespace or control characters")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise EndpointRefused("The endpoint is not a valid URL") from None
        if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
            raise EndpointRefused("The endpoint must be an absolute https URL")
        if parsed.userinfo:
            raise EndpointRefused("The endpoint must not carry credentials; use channel.header instead")
        return parsed

    def check(self, url: str) -> httpx.URL:
        """Parse ``url`` and vet the addresses its host resolves to now (EndpointRefused when the server may not
        call it); the parsed URL."""
        parsed = self.parse(url)
        self.addresses(host_of(parsed), parsed.port or DEFAULT_PORTS[parsed.scheme],
                       plain_http=parsed.scheme == "http")
        return parsed

    def addresses(self, host: str, port: int, *, plain_http: bool) -> list[IPAddress]:
        """Resolve ``host`` once and vet every address; the addresses that may be connected to, in preference
        order. EndpointRefused when the host does not resolve, when any address is not public (and the host
        not allow-listed), or for plain http to a host that is not allow-listed."""
        host = host.lower()
        literal = ip_literal(host)
        found = [literal] if literal is not None else self.resolver(host, port)
        if not found:
            raise EndpointRefused(f"The endpoint host {host} does not resolve")
        if host in self.allowed_hosts or all(any(a in n for n in self.allowed_networks) for a in found):
            return found
        internal = [a for a in found if not is_public(a)]
        if internal:
            raise EndpointRefused(f"The endpoint host {host} resolves to a non-public address ({internal[0]}); "
                                  "ask the server operator to allow-list it")
        if plain_http:
            raise EndpointRefused("The endpoint must use https (plain http only for allow-listed hosts)")
        return found


def host_of(url: httpx.URL) -> str:
    """The host the client connects to: ASCII (IDNA) form, an IPv6 address without brackets."""
    return url.raw_host.decode("ascii")

