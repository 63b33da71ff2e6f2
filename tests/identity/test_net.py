"""The SSRF guard: which addresses are public, which URLs are refused, and the guarded resolver."""

from __future__ import annotations

import aiohttp
import pytest
from identity_support import WebHost

from atstack.identity import UnsafeAddress, guarded_session, is_public_address
from atstack.identity.net import GuardedResolver, check_url, fetch_bounded


def test_public_addresses() -> None:
    private = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fe80::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "not-an-ip",
    ]
    public = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
    assert [a for a in private if is_public_address(a)] == []
    assert [a for a in public if not is_public_address(a)] == []


def test_check_url() -> None:
    refused = [
        "http://example.com/",  # plain http outside development mode
        "ftp://example.com/",
        "https://127.0.0.1/",
        "https://[::1]:8443/",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/",
        "https://foo.localhost/",
        "https://user:pw@example.com/",
        "https:///nohost",
        "https://example.com:notaport/",
    ]
    for url in refused:
        with pytest.raises(UnsafeAddress):
            check_url(url, allow_private=False)
    check_url("https://example.com/.well-known/did.json", allow_private=False)
    check_url("https://8.8.8.8/", allow_private=False)
    check_url("http://localhost:2583/", allow_private=True)
    check_url("http://example.com/", allow_private=False, allow_http=True)


async def test_guarded_resolver_refuses_loopback_names() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(OSError, match="non-public"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_guarded_session_cannot_connect_to_loopback(web_host: WebHost) -> None:
    web_host.routes["/x"] = (200, "secret")
    async with guarded_session(allow_private=False) as session:
        # even bypassing check_url, the connector's resolver refuses the loopback address
        with pytest.raises(aiohttp.ClientConnectorError):
            async with session.get(f"http://localhost:{web_host.port}/x"):
                pass
    async with guarded_session(allow_private=True) as session:
        status, body = await fetch_bounded(
            session, f"http://localhost:{web_host.port}/x", allow_private=True, timeout=5, max_bytes=100
        )
        assert (status, body) == (200, b"secret")
    assert web_host.hits == {"/x": 1}


async def test_fetch_bounded_redirects_and_size(web_host: WebHost) -> None:
    web_host.routes["/a"] = (301, "/b")
    web_host.routes["/b"] = (307, f"{web_host.url}/c")
    web_host.routes["/c"] = (200, "done")
    web_host.routes["/meta"] = (302, "http://169.254.169.254/latest/meta-data")
    web_host.routes["/big"] = (200, "x" * 1000)
    async with guarded_session(allow_private=True) as session:
        assert await fetch_bounded(
            session, f"{web_host.url}/a", allow_private=True, timeout=5, max_bytes=10
        ) == (
            200,
            b"done",
        )
        with pytest.raises(aiohttp.ClientError, match="redirects"):
            await fetch_bounded(
                session, f"{web_host.url}/a", allow_private=True, timeout=5, max_bytes=10, max_redirects=1
            )
        with pytest.raises(ValueError, match="larger"):
            await fetch_bounded(session, f"{web_host.url}/big", allow_private=True, timeout=5, max_bytes=999)
    # a redirect hop is checked like the first URL: public https host → link-local metadata address refused
    with pytest.raises(UnsafeAddress):
        check_url("http://169.254.169.254/latest/meta-data", allow_private=False, allow_http=True)
