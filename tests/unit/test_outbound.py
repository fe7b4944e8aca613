"""The outbound-call guard: URLs read with the HTTP client's own parser, IPv6 forms that carry a non-public
IPv4 address, and a transport that connects to the address it vetted (no DNS-rebinding window), used for
webhooks and client JWKS URLs."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest

from fhir_clr.auth.clients import ClientRecord, Role
from fhir_clr.auth.jwks import JwksResolver, KeyLookupError
from fhir_clr.outbound.addresses import IPAddress, is_public
from fhir_clr.outbound.policy import EndpointPolicy, EndpointRefused
from fhir_clr.outbound.transport import RefusedByPolicy, VettedTransport

PUBLIC = "93.184.216.34"
HOOK = "https://hooks.example.org/notify?token=SECRET"

NOT_PUBLIC = [
    # 127.0.0.1 and 10.0.0.1 in every IPv6 form that carries an IPv4 address
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",              # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1",                        # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b::a00:1",                # NAT64 well-known prefix
    "64:ff9b:1::7f00:1", "64:ff9b:1:7f00:1::",          # NAT64 local-use prefix (any embedding)
    "2002:7f00:1::1", "2002:a00:1::1",                  # 6to4
    "2001:0:808:808:0:0:80ff:fffe",                     # Teredo, client 127.0.0.1
    "2a00:1450::5efe:7f00:1", "2a00:1450::5efe:a00:1",  # ISATAP interface id
    # and the plain non-public ranges
    "127.0.0.1", "10.0.0.1", "0.0.0.0", "100.64.0.1", "169.254.169.254", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "ff02::1", "2001:db8::1",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_embedding_or_being_non_public_ipv4_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(EndpointRefused, match="non-public address"):
        EndpointPolicy().check(f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook")


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_and_their_translated_forms_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(("url", "reason"), [
    ("https://8.8.8.8:4431/\t@127.0.0.1", "whitespace or control"),
    ("https://8.8.8.8/\x01", "whitespace or control"),
    ("https://8.8.8.8/a b", "whitespace or control"),
    ("https://8.8.8.8/\u200b", "whitespace or control"),
    ("https://8.8.8.8\\@127.0.0.1/", "credentials"),  # httpx reads 127.0.0.1 as the host: refused either way
    ("https://user:pw@8.8.8.8/x", "credentials"),
    ("gopher://8.8.8.8/x", "absolute https"),
    ("/relative/hook", "absolute https"),
    ("https://[::1/x", "not a valid URL"),
    ("https://8.8.8.8/" + "x" * 3000, "at most"),
])
def test_urls_are_refused_as_the_client_would_read_them(url: str, reason: str) -> None:
    with pytest.raises(EndpointRefused, match=reason) as refused:
        EndpointPolicy.from_entries(["127.0.0.1"]).check(url)
    assert "\n" not in str(refused.value) and "SECRET" not in str(refused.value)


class Answers:
    """A resolver answering from a script: the n-th lookup gets the n-th answer (the last one repeats)."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return [ipaddress.ip_address(self.answers[min(len(self.lookups), len(self.answers)) - 1])]


class Stream(httpcore.AsyncNetworkStream):
    """One connection of :class:`Internet`: keeps what was sent and the TLS server name, answers 204."""

    def __init__(self, internet: Internet) -> None:
        self.internet = internet
        self.reply = [b"HTTP/1.1 204 No Content\r\n\r\n"]

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.reply.pop(0) if self.reply else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.internet.sent += buffer

    async def aclose(self) -> None:
        return None

    async def start_tls(self, ssl_context: object, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.internet.tls_names.append(server_hostname)
        return self


class Internet(httpcore.AsyncNetworkBackend):
    """Stands in for the network under the transport: records which address each connection goes to."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []
        self.sent = b""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> Stream:
        self.connects.append((host, port))
        return Stream(self)

    async def sleep(self, seconds: float) -> None:
        return None


async def test_the_connection_goes_to_the_address_that_was_vetted() -> None:
    answers, internet = Answers(PUBLIC, "127.0.0.1"), Internet()
    policy = EndpointPolicy(resolver=answers)
    async with httpx.AsyncClient(transport=VettedTransport(policy.addresses, network=internet)) as http:
        response = await http.post(HOOK, content=b"{}")
    assert response.status_code == 204
    assert answers.lookups == ["hooks.example.org"]  # one lookup: nothing to rebind between check and connect
    assert internet.connects == [(PUBLIC, 443)]
    assert internet.tls_names == ["hooks.example.org"]  # SNI and certificate checks stay with the name
    assert b"\r\nHost: hooks.example.org\r\n" in internet.sent


async def test_a_name_rebound_to_loopback_after_the_check_is_never_connected_to() -> None:
    answers, internet = Answers(PUBLIC, "127.0.0.1"), Internet()
    policy = EndpointPolicy(resolver=answers)
    policy.check(HOOK)  # at create time the name resolved to a public address
    async with httpx.AsyncClient(transport=VettedTransport(policy.addresses, network=internet)) as http:
        with pytest.raises(httpx.ConnectError) as failed:
            await http.post(HOOK, content=b"{}")
    assert isinstance(failed.value.__cause__, RefusedByPolicy) and "127.0.0.1" in str(failed.value)
    assert answers.lookups == ["hooks.example.org"] * 2 and internet.connects == []


async def test_plain_http_is_vetted_at_connect_time_too() -> None:
    internet = Internet()
    public = EndpointPolicy(resolver=Answers(PUBLIC))
    async with httpx.AsyncClient(transport=VettedTransport(public.addresses, network=internet)) as http:
        with pytest.raises(httpx.ConnectError, match="must use https"):
            await http.post("http://hooks.example.org/notify", content=b"{}")
    allowed = EndpointPolicy.from_entries(["10.0.0.0/8"], resolver=Answers("10.1.2.3"))
    async with httpx.AsyncClient(transport=VettedTransport(allowed.addresses, network=internet)) as http:
        assert (await http.post("http://hooks.internal:8080/notify", content=b"{}")).status_code == 204
    assert internet.connects == [("10.1.2.3", 8080)]


def _json_server(body: bytes) -> ThreadingHTTPServer:
    """A loopback HTTP server answering every GET with ``body`` as JSON (started in a thread)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def jwks_server() -> Iterator[str]:
    """A local JWKS URL serving one EC key."""
    server = _json_server(json.dumps(
        {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "x", "y": "y"}]}).encode())
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json?tenant=SECRET"
    server.shutdown()
    server.server_close()


async def test_jwks_urls_are_fetched_over_the_vetted_transport(jwks_server: str) -> None:
    client = ClientRecord("c1", "CBO", "Organization/o1", Role.SERVICING_PROVIDER, ("system/Task.rs",),
                          jwks_url=jwks_server)
    with pytest.raises(KeyLookupError):
        await JwksResolver().key_for(client, "ES384", "k1")  # loopback is not public
    allowed = JwksResolver(policy=EndpointPolicy.from_entries(["127.0.0.1"]))
    assert (await allowed.key_for(client, "ES384", "k1"))["kid"] == "k1"


async def test_a_jwks_answer_longer_than_the_cap_is_a_failed_fetch() -> None:
    server = _json_server(b'{"keys": [' + b" " * (1024 * 1024) + b"]}")
    try:
        client = ClientRecord("c1", "CBO", "Organization/o1", Role.SERVICING_PROVIDER, ("system/Task.rs",),
                              jwks_url=f"http://127.0.0.1:{server.server_address[1]}/jwks.json")
        with pytest.raises(KeyLookupError, match="could not be read"):
            await JwksResolver(policy=EndpointPolicy.from_entries(["127.0.0.1"])).key_for(client, "ES384", "k1")
    finally:
        server.shutdown()
        server.server_close()
