"""HandleResolver: TXT record selection, the well-known file, a real DNS server and web host on loopback."""

from __future__ import annotations

from collections.abc import Callable

import dns.nameserver
import pytest
from identity_support import DnsServer, WebHost

from atstack.identity import HandleResolver, InvalidHandle, did_from_txt_records, did_from_well_known
from atstack.identity.handle_resolver import normalize_resolvable_handle

DID_A = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
DID_B = "did:plc:z72i7hdynmk6r22z27h6tvur"
DID_WEB = "did:web:example.com"


def test_txt_record_selection() -> None:
    cases: list[tuple[list[object], str | None]] = [
        ([f"did={DID_A}"], DID_A),
        (["v=spf1 -all", f"did={DID_A}", "google-site-verification=x"], DID_A),  # other TXT ignored
        ([f"did={DID_A}", f"did={DID_A}"], DID_A),  # the same DID twice is one DID
        ([f"did={DID_A}", f"did={DID_B}"], None),  # conflicting DIDs: no answer
        ([], None),
        (["v=spf1 -all"], None),
        ([f"did={DID_WEB}"], DID_WEB),
        ([f"did= {DID_A} "], DID_A),  # surrounding whitespace trimmed
        (["did=not-a-did"], None),
        (["did=did:example:123456"], None),  # unsupported method
        ([f"DID={DID_A}"], None),  # the prefix is case-sensitive
        ([f"xdid={DID_A}"], None),
        ([f"did={DID_A}".encode()], DID_A),
        ([(b"did=did:plc:ewvi7nxzy", b"oun6zhxrhs64oiz")], DID_A),  # a TXT record split into strings
    ]
    for records, expected in cases:
        assert did_from_txt_records(records) == expected, records  # type: ignore[arg-type]
    assert len(cases) == 14


def test_well_known_body() -> None:
    assert did_from_well_known(f"{DID_A}".encode()) == DID_A
    assert did_from_well_known(f"  {DID_A}\n".encode()) == DID_A
    assert did_from_well_known(f"{DID_A}\nextra line".encode()) == DID_A
    assert did_from_well_known(b"<html>hi</html>") is None
    assert did_from_well_known(b"") is None
    assert did_from_well_known(b"did:example:123") is None


def test_handle_normalization() -> None:
    assert normalize_resolvable_handle("Alice.Example.COM", allow_test=False) == "alice.example.com"
    assert normalize_resolvable_handle("alice.test", allow_test=True) == "alice.test"
    for bad, allow_test in [("alice.test", False), ("x.local", True), ("x.onion", True), ("nodots", True)]:
        with pytest.raises(InvalidHandle):
            normalize_resolvable_handle(bad, allow_test=allow_test)


def _well_known_on(host: WebHost) -> Callable[[str], str]:
    return lambda handle: f"{host.url}/{handle}/.well-known/atproto-did"


async def test_http_lookup(web_host: WebHost) -> None:
    web_host.routes["/alice.test/.well-known/atproto-did"] = (200, f"{DID_A}\n")
    web_host.routes["/moved.test/.well-known/atproto-did"] = (302, "/alice.test/.well-known/atproto-did")
    web_host.routes["/junk.test/.well-known/atproto-did"] = (200, "<html>not a did</html>")
    web_host.routes["/err.test/.well-known/atproto-did"] = (500, DID_A)
    web_host.routes["/loop.test/.well-known/atproto-did"] = (302, "/loop.test/.well-known/atproto-did")
    web_host.routes["/big.test/.well-known/atproto-did"] = (200, DID_A + " " * 5000)
    async with HandleResolver(allow_private=True, dns=False, well_known_url=_well_known_on(web_host)) as r:
        assert await r.resolve("alice.test") == DID_A
        assert await r.resolve("ALICE.test") == DID_A  # handles compare case-insensitively
        assert await r.resolve("moved.test") == DID_A  # redirects are followed
        for handle in ("junk.test", "err.test", "loop.test", "big.test", "missing.test"):
            assert await r.resolve(handle) is None, handle
        with pytest.raises(InvalidHandle):
            await r.resolve("bad..handle")

        # cached, including the misses, until refreshed
        web_host.routes["/alice.test/.well-known/atproto-did"] = (200, DID_B)
        web_host.routes["/missing.test/.well-known/atproto-did"] = (200, DID_B)
        assert await r.resolve("alice.test") == DID_A
        assert await r.resolve("missing.test") is None
        assert await r.resolve("alice.test", refresh=True) == DID_B
        r.invalidate("missing.test")
        assert await r.resolve("missing.test") == DID_B


async def test_http_lookup_is_guarded(web_host: WebHost) -> None:
    web_host.routes["/alice.test/.well-known/atproto-did"] = (200, DID_A)
    async with HandleResolver(dns=False, well_known_url=_well_known_on(web_host)) as r:
        assert await r.resolve_http("alice.test") is None  # loopback refused outside development mode
    assert web_host.hits == {}


def _dns_resolver(dns_port: int, **kwargs: object) -> HandleResolver:
    return HandleResolver(
        allow_private=True, nameservers=[dns.nameserver.Do53Nameserver("127.0.0.1", dns_port)], **kwargs
    )


async def test_dns_lookup(dns_server: tuple[DnsServer, int]) -> None:
    server, port = dns_server
    server.records["_atproto.alice.test"] = [f'"did={DID_A}"', '"v=spf1 -all"']
    server.records["_atproto.split.test"] = ['"did=did:plc:ewvi7nxzy" "oun6zhxrhs64oiz"']
    server.records["_atproto.conflict.test"] = [f'"did={DID_A}"', f'"did={DID_B}"']
    server.records["_atproto.other.test"] = ['"hello"']
    async with _dns_resolver(port, well_known_url=lambda h: "http://127.0.0.1:9/unused") as r:
        assert await r.resolve_dns("alice.test") == DID_A
        assert await r.resolve_dns("split.test") == DID_A
        assert await r.resolve_dns("conflict.test") is None
        assert await r.resolve_dns("other.test") is None
        assert await r.resolve_dns("nxdomain.test") is None
    assert server.queries >= 5


async def test_dns_preferred_over_http(dns_server: tuple[DnsServer, int], web_host: WebHost) -> None:
    server, port = dns_server
    server.records["_atproto.both.test"] = [f'"did={DID_A}"']
    server.records["_atproto.conflict.test"] = [f'"did={DID_A}"', f'"did={DID_B}"']
    for handle in ("both.test", "webonly.test", "conflict.test"):
        web_host.routes[f"/{handle}/.well-known/atproto-did"] = (200, DID_B)
    async with _dns_resolver(port, well_known_url=_well_known_on(web_host)) as r:
        assert await r.resolve("both.test") == DID_A  # DNS and HTTPS disagree: DNS wins
        assert await r.resolve("webonly.test") == DID_B  # no TXT record: HTTPS answers
        assert await r.resolve("conflict.test") == DID_B  # ambiguous DNS gives no answer: HTTPS answers


async def test_dns_timeout() -> None:
    import asyncio
    import socket

    # a UDP socket that never answers
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        port = sock.getsockname()[1]
        async with _dns_resolver(port, timeout=0.3, well_known_url=lambda h: "http://127.0.0.1:9/x") as r:
            started = asyncio.get_running_loop().time()
            assert await r.resolve("slow.test") is None
            assert asyncio.get_running_loop().time() - started < 3
    finally:
        sock.close()
