"""Which IP addresses count as public, looking inside the IPv6 forms that carry an IPv4 address (IPv4-mapped,
NAT64, 6to4, Teredo, ISATAP), and the resolver that turns a host name into addresses."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]
"""``(host name, port)`` -> its addresses in preference order (empty when it does not resolve)."""

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052: the IPv4 address is the last 32 bits."""
NOT_PUBLIC_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "64:ff9b:1::/48",  # RFC 8215 local-use NAT64: never globally reachable, may translate to any IPv4 address
    "2001:db8::/32",   # documentation
    "3fff::/20",       # documentation (RFC 9637)
    "5f00::/16",       # SRv6 SIDs (RFC 9602)
))
"""Ranges the IANA registry marks not globally reachable that this Python's ``is_global`` still accepts."""
ISATAP_IDS = (0x00005EFE, 0x02005EFE)
"""The upper half of an ISATAP interface id; the IPv4 address is the lower half."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (IPv4-mapped or -compatible, NAT64, 6to4, Teredo server and
    client, ISATAP); empty for a plain IPv6 address."""
    value = int(address)
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if value >> 32 == 0 or address in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if (value >> 32) & 0xFFFFFFFF in ISATAP_IDS:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """True for a globally reachable unicast address (and, for IPv6, when every IPv4 address it embeds is one);
    False for loopback, private, link-local, shared, multicast, reserved and unspecified addresses."""
    if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped is not None
                                                       or address in NAT64_WELL_KNOWN):
        return all(is_public(v4) for v4 in embedded_ipv4(address))  # reaches an IPv4 address: only it counts
    if (not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified
            or address.is_loopback or address.is_link_local):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    return not any(address in network for network in NOT_PUBLIC_V6) and all(
        is_public(v4) for v4 in embedded_ipv4(address))


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is one (an IPv6 zone index is dropped)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the operating system's resolver, each once, in the order it gave them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = (ip_literal(str(info[4][0])) for info in infos)
    return list(dict.fromkeys(a for a in found if a is not None))
