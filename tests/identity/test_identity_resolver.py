"""Bidirectional confirmation: a real PLC directory plus a loopback well-known host for the handles."""

from __future__ import annotations

import aiohttp
import pytest
from identity_support import WebHost, new_account

from atstack.identity import (
    DidResolver,
    HandleResolutionError,
    HandleResolver,
    IdentityMismatch,
    IdentityResolver,
    PlcClient,
)


async def test_resolve_identity(plc_url: str, web_host: WebHost, http: aiohttp.ClientSession) -> None:
    plc = PlcClient(plc_url, http)
    alice = new_account("alice.test", pds="https://pds.example.com")
    eve = new_account("eve.test")  # claims a handle whose domain does not point back
    await plc.submit_operation(alice.did, alice.genesis)
    await plc.submit_operation(eve.did, eve.genesis)
    web_host.routes["/alice.test/.well-known/atproto-did"] = (200, alice.did)
    web_host.routes["/eve.test/.well-known/atproto-did"] = (200, alice.did)
    web_host.routes["/impostor.test/.well-known/atproto-did"] = (200, alice.did)

    async with (
        DidResolver(plc_url, session=http, allow_private=True) as dids,
        HandleResolver(
            allow_private=True,
            dns=False,
            well_known_url=lambda h: f"{web_host.url}/{h}/.well-known/atproto-did",
        ) as handles,
    ):
        resolver = IdentityResolver(dids, handles)

        by_did = await resolver.resolve_identity(alice.did)
        assert (by_did.did, by_did.handle, by_did.claimed_handle) == (alice.did, "alice.test", "alice.test")
        assert by_did.signing_key == alice.signing.public_key.multikey()
        assert by_did.pds_endpoint == "https://pds.example.com"
        assert by_did.doc["id"] == alice.did

        assert await resolver.resolve_identity("Alice.TEST") == by_did

        unconfirmed = await resolver.resolve_identity(eve.did)
        assert (unconfirmed.handle, unconfirmed.claimed_handle) == (None, "eve.test")

        with pytest.raises(IdentityMismatch):
            await resolver.resolve_identity("impostor.test")  # points at alice, who does not claim it
        with pytest.raises(HandleResolutionError):
            await resolver.resolve_identity("nobody.test")
