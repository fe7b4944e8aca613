"""Which webhook endpoints the server will call (server-side request forgery guard).

An endpoint must be an absolute ``https`` URL whose host resolves only to public addresses. Loopback, private,
link-local, multicast, reserved and unspecified addresses are refused unless the operator allow-lists the host
name or a network containing the address (``FHIR_CLR_WEBHOOK_ALLOWED_HOSTS``, e.g. ``127.0.0.1,10.0.0.0/8``).
An allow-listed host may also use plain ``http`` (a receiver on the same private network). The check runs
when a Subscription is negotiated and again before every delivery, so a DNS name that later points inside the
network is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(ValueError):
    """The endpoint breaks the policy; the message says how."""


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """The allow-list: host names and networks exempt from the public-address rule."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_entries(cls, entries: Sequence[str]) -> EndpointPolicy:
        """Entries are host names, addresses or CIDR networks."""
        hosts, networks = set(), []
        for entry in (e.strip() for e in entries if e.strip()):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(frozenset(hosts), tuple(networks))

    def check(self, url: str) -> None:
        """Raise EndpointRefused unless the server may post to ``url``."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            raise EndpointRefused("The endpoint must be an absolute https URL")
        if parts.username or parts.password:
            raise EndpointRefused("The endpoint must not carry credentials; use channel.header instead")
        addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
        if self._allow_listed(host, addresses):
            return
        if not addresses:
            raise EndpointRefused(f"The endpoint host {host} does not resolve")
        internal = [a for a in addresses if not a.is_global]
        if internal:
            raise EndpointRefused(f"The endpoint host {host} resolves to a non-public address ({internal[0]}); "
                                  "ask the server operator to allow-list it")
        if parts.scheme == "http":
            raise EndpointRefused("The endpoint must use https (plain http only for allow-listed hosts)")


    def is_allow_listed(self, url: str) -> bool:
        """True when the operator allow-listed the endpoint's host (it may then use plain http)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return bool(host) and self._allow_listed(host, _resolve(host, parts.port or 80))

    def _allow_listed(self, host: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
        return host in self.allowed_hosts or (
            bool(addresses) and all(any(a in n for n in self.allowed_networks) for a in addresses))


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}, key=str)
