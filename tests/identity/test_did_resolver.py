"""DidResolver: did:plc through a real directory, did:web through a loopback host; caching and refresh."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from identity_support import WebHost, new_account

from atstack.core.did_doc import build_did_doc
from atstack.core.plc_op import create_tombstone_op, create_update_op
from atstack.identity import (
    DidNotFound,
    DidResolutionError,
    DidResolver,
    PlcClient,
    did_web_url,
)


async def test_did_plc(plc_url: str, http: aiohttp.ClientSession) -> None:
    plc = PlcClient(plc_url, http)
    acct = new_account("alice.test", pds="https://pds.example.com")
    await plc.submit_operation(acct.did, acct.genesis)
    async with DidResolver(plc_url) as resolver:
        ident = await resolver.resolve(acct.did)
        assert ident.did == acct.did
        assert ident.handle == "alice.test"
        assert ident.signing_key == acct.signing.public_key.multikey()
        assert ident.pds_endpoint == "https://pds.example.com"
        assert (await resolver.resolve_doc(acct.did))["id"] == acct.did

        # cached until refreshed
        update = create_update_op(acct.genesis, acct.rotation, handle="bob.test")
        await plc.submit_operation(acct.did, update)
        assert (await resolver.resolve(acct.did)).handle == "alice.test"
        assert (await resolver.refresh(acct.did)).handle == "bob.test"

        update2 = create_update_op(update, acct.rotation, handle="carol.test")
        await plc.submit_operation(acct.did, update2)
        assert (await resolver.resolve(acct.did)).handle == "bob.test"
        resolver.invalidate(acct.did)
        assert (await resolver.resolve(acct.did)).handle == "carol.test"

        await plc.submit_operation(acct.did, create_tombstone_op(update2, acct.rotation))
        with pytest.raises(DidNotFound) as info:
            await resolver.refresh(acct.did)
        assert info.value.deactivated is True

        with pytest.raises(DidNotFound) as info:
            await resolver.resolve("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
        assert info.value.deactivated is False
        for bad in ("did:plc:short", "did:example:123", "not-a-did"):
            with pytest.raises(DidResolutionError):
                await resolver.resolve(bad)


async def test_cache_ttl(plc_url: str, http: aiohttp.ClientSession) -> None:
    plc = PlcClient(plc_url, http)
    acct = new_account("alice.test")
    await plc.submit_operation(acct.did, acct.genesis)
    now = [0.0]
    async with DidResolver(plc_url, session=http, ttl=60, clock=lambda: now[0]) as resolver:
        assert (await resolver.resolve(acct.did)).handle == "alice.test"
        await plc.submit_operation(acct.did, create_update_op(acct.genesis, acct.rotation, handle="bob.test"))
        now[0] = 59
        assert (await resolver.resolve(acct.did)).handle == "alice.test"
        now[0] = 61
        assert (await resolver.resolve(acct.did)).handle == "bob.test"
    assert not http.closed  # a session passed in stays the caller's


def _serve_doc(host: WebHost, did: str, doc: object) -> None:
    host.routes["/.well-known/did.json"] = (200, orjson.dumps(doc))


async def test_did_web(web_host: WebHost) -> None:
    did = f"did:web:localhost%3A{web_host.port}"
    signing = new_account("x.test").signing
    _serve_doc(
        web_host, did, build_did_doc(did, "web.test", signing.public_key.multikey(), "https://pds.web.test")
    )
    async with DidResolver(allow_private=True) as resolver:
        ident = await resolver.resolve(did)
        assert (ident.handle, ident.pds_endpoint) == ("web.test", "https://pds.web.test")
        assert ident.signing_key == signing.public_key.multikey()

        # concurrent misses share one request
        web_host.hits.clear()
        resolver.invalidate(did)
        results = await asyncio.gather(*(resolver.resolve(did) for _ in range(10)))
        assert all(r == ident for r in results)
        assert web_host.hits["/.well-known/did.json"] == 1

        _serve_doc(web_host, did, build_did_doc("did:web:other.test", None, None, None))
        with pytest.raises(DidResolutionError, match="does not match"):
            await resolver.refresh(did)
        web_host.routes["/.well-known/did.json"] = (200, b"<html>")
        with pytest.raises(DidResolutionError, match="invalid JSON"):
            await resolver.refresh(did)
        web_host.routes["/.well-known/did.json"] = (500, b"{}")
        with pytest.raises(DidResolutionError, match="500"):
            await resolver.refresh(did)
        del web_host.routes["/.well-known/did.json"]
        with pytest.raises(DidNotFound):
            await resolver.refresh(did)


async def test_did_web_guard(web_host: WebHost) -> None:
    did = f"did:web:localhost%3A{web_host.port}"
    _serve_doc(web_host, did, build_did_doc(did, None, None, None))
    async with DidResolver() as resolver:
        # outside development mode: no ports, no loopback, no plain http
        for target in (did, "did:web:localhost", "did:web:127.0.0.1", "did:web:10.0.0.8"):
            with pytest.raises(DidResolutionError):
                await resolver.resolve(target)
    assert web_host.hits == {}
    assert (
        did_web_url("did:web:example.com", allow_private=False) == "https://example.com/.well-known/did.json"
    )
    assert did_web_url(did, allow_private=True) == f"http://localhost:{web_host.port}/.well-known/did.json"
    with pytest.raises(DidResolutionError):
        did_web_url("did:web:example.com:u:alice", allow_private=True)
