"""Admin endpoints and page, host bans and limits, repo takedowns, identity refresh and account status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from fake_host import FakeHost
from relay_support import (
    ADMIN_PASSWORD,
    Firehose,
    admin_post,
    get_json,
    metric_value,
    metrics_text,
    start_relay,
)

from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, SyncEvent


def commits_of(events: list, did: str) -> list[CommitEvent]:
    return [e for e in events if type(e) is CommitEvent and e.repo == did]


async def crawl(http: aiohttp.ClientSession, relay_url: str, hostname: str) -> tuple[int, dict]:
    async with http.post(
        f"{relay_url}/xrpc/com.atproto.sync.requestCrawl", json={"hostname": hostname}
    ) as resp:
        return resp.status, await resp.json(content_type=None) if resp.content_length else {}


async def test_admin_auth_page_and_host_lifecycle(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    host = await FakeHost(plc_url, http).start()
    relay = await start_relay(tmp_path / "relay", plc_url)
    try:
        async with http.get(f"{relay.url}/admin/") as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(
            f"{relay.url}/admin/hosts", headers={"Authorization": aiohttp.encode_basic_auth("admin", "nope")}
        ) as resp:
            assert resp.status == 401
        auth = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}
        async with http.get(f"{relay.url}/admin/", headers=auth) as resp:
            assert resp.status == 200 and "atstack relay" in await resp.text()

        # requestCrawl rules: malformed names, unreachable hosts
        status, body = await crawl(http, relay.url, "not a host")
        assert status == 400 and body["error"] == "InvalidRequest"
        status, body = await crawl(http, relay.url, "localhost:1")
        assert status == 400 and "reachable" in body["message"]

        alice = await host.create_account("alice.test")
        host.announce(alice)
        status, _ = await crawl(http, relay.url, host.url)  # a URL normalises to the hostname
        assert status == 200
        firehose = Firehose(relay.ws_url, http, cursor=0).start()
        await firehose.wait_for(lambda evs: len(commits_of(evs, alice.did)) == 1)

        async with http.get(f"{relay.url}/admin/hosts", headers=auth) as resp:
            (summary,) = (await resp.json())["hosts"]
        assert summary["hostname"] == host.hostname and summary["connected"] and summary["accountCount"] == 1

        # ban: the connection goes, requestCrawl is refused, listHosts says banned
        status, body = await admin_post(http, relay, "hosts/ban", {"hostname": host.hostname})
        assert status == 200 and body["status"] == "banned" and not body["connected"]
        status, body = await crawl(http, relay.url, host.hostname)
        assert status == 400 and body["error"] == "HostBanned"
        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getHostStatus", {"hostname": host.hostname}
        )
        assert body["status"] == "banned"
        host.send_commit(alice.did, alice.write())  # not read while banned
        await asyncio.sleep(0.3)
        assert len(commits_of(firehose.events, alice.did)) == 1

        # unban: reconnects from the cursor and picks up what it missed
        status, body = await admin_post(http, relay, "hosts/unban", {"hostname": host.hostname})
        assert status == 200 and body["status"] == "active"
        await firehose.wait_for(lambda evs: len(commits_of(evs, alice.did)) == 2)

        # account limit: a second account on this host is refused once the limit is 1
        status, body = await admin_post(
            http,
            relay,
            "hosts/limits",
            {"hostname": host.hostname, "accountLimit": 1, "eventsPerSecond": 500},
        )
        assert status == 200 and body["accountLimit"] == 1 and body["eventsPerSecondLimit"] == 500
        bob = await host.create_account("bob.test")
        host.announce(bob)
        host.send_commit(alice.did, alice.write())
        await firehose.wait_for(lambda evs: len(commits_of(evs, alice.did)) == 3)
        await relay.idle()
        assert commits_of(firehose.events, bob.did) == []
        text = await metrics_text(http, relay)
        assert metric_value(text, "relay_events_dropped_total", reason="host_account_limit") >= 1

        # limits persist: a restarted relay still has them and resumes the host from its cursor
        await firehose.stop()
        await relay.close()
        relay = await start_relay(tmp_path / "relay", plc_url)
        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getHostStatus", {"hostname": host.hostname}
        )
        assert status == 200 and body["status"] == "active" and body["accountCount"] == 1
        assert relay.ctx.slurper.get(host.hostname).account_limit == 1  # type: ignore[union-attr]
        firehose = Firehose(relay.ws_url, http, cursor=0).start()
        host.send_commit(alice.did, alice.write())
        events = await firehose.wait_for(lambda evs: len(commits_of(evs, alice.did)) == 4)
        assert [c.rev for c in commits_of(events, alice.did)] == sorted(
            {c.rev for c in commits_of(events, alice.did)}
        )
        await firehose.stop()
    finally:
        await relay.close()
        await host.close()


async def test_takedown_identity_and_account_status(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    host = await FakeHost(plc_url, http).start()
    relay = await start_relay(tmp_path / "relay", plc_url)
    try:
        carol = await host.create_account("carol.test")
        dave = await host.create_account("dave.test")
        host.announce(carol)
        host.announce(dave)
        assert (await crawl(http, relay.url, host.hostname))[0] == 200
        for _ in range(500):  # both accounts' first three events are in
            if relay.ctx.started and relay.ctx.hub.last_published >= 6:
                break
            await asyncio.sleep(0.01)
        firehose = Firehose(relay.ws_url, http, cursor=relay.ctx.hub.last_published).start()

        # takedown: an #account event, commits dropped, status in the sync queries; restore undoes it
        status, body = await admin_post(http, relay, "repos/takedown", {"did": carol.did})
        assert status == 200 and body == {"did": carol.did, "active": False, "status": "takendown"}
        host.send_commit(carol.did, carol.write())
        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getLatestCommit", {"did": carol.did}
        )
        assert status == 400 and body["error"] == "RepoTakendown"
        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getRepoStatus", {"did": carol.did}
        )
        assert body == {"did": carol.did, "active": False, "status": "takendown"}
        status, body = await admin_post(http, relay, "repos/restore", {"did": carol.did})
        assert body["active"] is True
        host.send_commit(carol.did, restored := carol.write())

        # key rotation without an #identity: the bad-looking signature is re-checked with a fresh key
        await host.rotate_signing_key(dave)
        host.send_commit(dave.did, rotated := dave.write())

        # the host deactivates dave: passed on, then his commits are dropped until reactivation
        host.send_account(dave, active=False, status="deactivated")
        host.send_commit(dave.did, dave.write())
        host.send_account(dave, active=True)
        host.send_identity(dave)
        host.send_commit(dave.did, last := dave.write())

        # the commits dropped meanwhile break each chain: the next commit triggers a resync, whose #sync
        # (at that very commit) replaces it
        events = await firehose.wait_for(
            lambda evs: any(type(e) is SyncEvent and e.did == dave.did and e.rev == last.rev for e in evs)
        )
        carol_events = [e for e in events if getattr(e, "did", getattr(e, "repo", None)) == carol.did]
        assert [type(e) for e in carol_events] == [AccountEvent, AccountEvent, SyncEvent]
        assert (carol_events[0].active, carol_events[0].status) == (False, "takendown")  # type: ignore[union-attr]
        assert carol_events[1].active is True and carol_events[2].rev == restored.rev  # type: ignore[union-attr]

        dave_events = [e for e in events if getattr(e, "did", getattr(e, "repo", None)) == dave.did]
        kinds = [(type(e).__name__, getattr(e, "active", None)) for e in dave_events]
        assert kinds == [
            ("CommitEvent", None),
            ("AccountEvent", False),
            ("AccountEvent", True),
            ("IdentityEvent", None),
            ("SyncEvent", None),
        ]
        assert dave_events[0].commit == rotated.cid  # type: ignore[union-attr]
        assert isinstance(dave_events[3], IdentityEvent) and dave_events[3].handle == "dave.test"
        assert dave_events[1].status == "deactivated"  # type: ignore[union-attr]

        await relay.idle()
        text = await metrics_text(http, relay)
        assert metric_value(text, "relay_events_dropped_total", reason="takendown") == 1
        assert metric_value(text, "relay_events_dropped_total", reason="inactive_account") == 1
        assert metric_value(text, "relay_events_dropped_total", reason="bad_signature") == 0
        assert metric_value(text, "relay_events_dropped_total", reason="chain_break") == 2
        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getLatestCommit", {"did": dave.did}
        )
        assert body == {"cid": last.cid.encode(), "rev": last.rev}
        await firehose.stop()
    finally:
        await relay.close()
        await host.close()
