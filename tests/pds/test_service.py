"""Service-level behaviour: rate limits and their headers, requestCrawl to relays, and an account migrating
between two PDSes (service auth, bring-your-own DID, importRepo, PLC update, activation)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from pds_support import PASSWORD, Pds, post_record, start_pds

from atstack.core.plc_op import create_update_op
from atstack.core.stream import AccountEvent, IdentityEvent, SyncEvent, decode_event
from atstack.pds.store import accounts
from atstack.xrpc.service import start_test_server

POST = "app.bsky.feed.post"


async def test_rate_limits(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    pds = await start_pds(tmp_path / "rl", plc_url, http, rate_limits=True)
    try:
        alice = await pds.create_account("alice")
        r = await pds.create_record(alice, post_record())
        assert r.status == 200
        assert r.headers["RateLimit-Limit"] == "5000"
        assert r.headers["RateLimit-Remaining"] == "4997"  # a create costs 3 points
        assert r.headers["RateLimit-Policy"] == "5000;w=3600"
        rkey = r.body["uri"].rsplit("/", 1)[1]
        r = await pds.post(
            "com.atproto.repo.deleteRecord", {"repo": alice.did, "collection": POST, "rkey": rkey}, alice.auth
        )
        assert r.headers["RateLimit-Remaining"] == "4996"
        login = {"identifier": "alice.test", "password": "wrong"}
        statuses = [(await pds.post("com.atproto.server.createSession", login)).status for _ in range(30)]
        assert statuses == [401] * 30
        r = await pds.post("com.atproto.server.createSession", {**login, "password": PASSWORD})
        assert (r.status, r.error) == (429, "RateLimitExceeded")
        assert int(r.headers["Retry-After"]) > 0 and r.headers["RateLimit-Remaining"] == "0"
        # other identifiers are not affected
        bob = await pds.create_account("bob")
        r = await pds.post("com.atproto.server.createSession", {"identifier": bob.did, "password": PASSWORD})
        assert r.status == 200
    finally:
        await pds.runner.cleanup()


async def test_request_crawl(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    seen: list[dict] = []

    async def request_crawl(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({})

    relay = web.Application()
    relay.router.add_post("/xrpc/com.atproto.sync.requestCrawl", request_crawl)
    runner, relay_url = await start_test_server(relay)
    pds = await start_pds(tmp_path / "crawl", plc_url, http, crawlers=(relay_url,))
    try:
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.02)
        port = pds.url.rsplit(":", 1)[1]
        assert seen == [{"hostname": f"localhost:{port}"}]
        # writes within 20 minutes do not repeat it
        alice = await pds.create_account("alice")
        await pds.create_record(alice, post_record())
        await asyncio.sleep(0.1)
        assert len(seen) == 1
    finally:
        await pds.runner.cleanup()
        await runner.cleanup()


async def test_migration_between_two_pdses(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession, pds: Pds
) -> None:
    old = pds
    new = await start_pds(tmp_path / "new", plc_url, http)
    try:
        alice = await old.create_account("alice")
        for i in range(3):
            await old.create_record(alice, post_record(f"p{i}"))
        # 1. a service token from the old PDS for createAccount on the new one
        r = await old.get(
            "com.atproto.server.getServiceAuth",
            {"aud": new.ctx.config.service_did, "lxm": "com.atproto.server.createAccount"},
            alice.auth,
        )
        assert r.status == 200, r.body
        token = r.body["token"]
        body = {"handle": "alice.test", "email": "alice@example.com", "password": PASSWORD, "did": alice.did}
        r = await new.post("com.atproto.server.createAccount", body)
        assert r.status == 401  # bringing a DID needs its service token
        # (the handle is still the old PDS's here, so the new one checks it resolves to the DID: it does not)
        r = await new.post("com.atproto.server.createAccount", body, {"Authorization": f"Bearer {token}"})
        assert r.status == 200, r.body
        new_access = {"Authorization": f"Bearer {r.body['accessJwt']}"}
        status = await new.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
        assert status.body["active"] is False and status.body["status"] == "deactivated"
        # 2. the repo moves over
        car = (await old.get("com.atproto.sync.getRepo", {"did": alice.did})).raw
        r = await new.post(
            "com.atproto.repo.importRepo",
            data=car,
            content_type="application/vnd.ipld.car",
            headers=new_access,
        )
        assert r.status == 200, r.body
        # 3. activation is refused while the DID document still points at the old PDS
        r = await new.post("com.atproto.server.activateAccount", headers=new_access)
        assert (r.status == 400 and "does not match" in r.body["message"]) or "rotation key" in r.body[
            "message"
        ]
        # 4. the PLC update (what signPlcOperation does on the old PDS), then activation
        old_account = await old.ctx.db.read(lambda c: accounts.get_account(c, alice.did))
        new_account = await new.ctx.db.read(lambda c: accounts.get_account(c, alice.did))
        last = await old.ctx.plc.get_last_op(alice.did)
        op = create_update_op(
            last,
            old_account.rotation_key,
            rotation_keys=[new_account.rotation_key, old_account.rotation_key],
            pds_endpoint=new.ctx.config.public_url,
            atproto_key=new_account.signing_key.public_key,
        )
        await old.ctx.plc.submit_operation(alice.did, op)
        async with http.ws_connect(new.ws_url()) as ws:
            r = await new.post("com.atproto.server.activateAccount", headers=new_access)
            assert r.status == 200, r.body
            events = [decode_event((await ws.receive(timeout=5)).data) for _ in range(3)]
        assert [type(e) for e in events] == [AccountEvent, IdentityEvent, SyncEvent]
        r = await old.post("com.atproto.server.deactivateAccount", {}, alice.auth)
        assert r.status == 200
        listed = await new.get("com.atproto.repo.listRecords", {"repo": alice.did, "collection": POST})
        assert sorted(x["value"]["text"] for x in listed.body["records"]) == ["p0", "p1", "p2"]
        r = await new.create_record(
            alice.__class__(**{**alice.__dict__, "access": new_access["Authorization"][7:]}),
            post_record("on new"),
        )
        assert r.status == 200, r.body
        r = await new.get("com.atproto.server.checkAccountStatus", headers=new_access)
        assert r.body["activated"] is True and r.body["validDid"] is True
    finally:
        await new.runner.cleanup()
