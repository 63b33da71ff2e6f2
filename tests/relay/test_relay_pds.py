"""The relay against a real atstack PDS: requestCrawl, re-sequenced firehose, repo and host queries."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from relay_support import Firehose, get_json, start_pds, start_relay

from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent


async def test_crawl_pds_and_serve_firehose(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    pds = await start_pds(tmp_path / "pds", plc_url, http)
    relay = await start_relay(tmp_path / "relay", plc_url)
    try:
        alice = await pds.create_account("alice")
        first = await pds.post_record(alice, "before the relay knew us")

        async with http.post(
            f"{relay.url}/xrpc/com.atproto.sync.requestCrawl", json={"hostname": pds.hostname}
        ) as resp:
            assert resp.status == 200, await resp.text()
        firehose = Firehose(relay.ws_url, http, cursor=0).start()
        # backfill: the PDS's retained window comes through the relay, identity → account → commits
        await firehose.wait_for(lambda evs: sum(type(e) is CommitEvent for e in evs) >= 2)
        second = await pds.post_record(alice, "live")
        bob = await pds.create_account("bob")
        await pds.post_record(bob, "bob was here", "com.example.note")
        events = await firehose.wait_for(
            lambda evs: any(type(e) is CommitEvent and e.repo == bob["did"] and e.ops for e in evs)
        )
        await firehose.stop()

        seqs = [e.seq for e in events]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1
        alice_commits = [e for e in events if type(e) is CommitEvent and e.repo == alice["did"]]
        assert [c.rev for c in alice_commits] == sorted(c.rev for c in alice_commits)
        assert alice_commits[-2].commit.encode() == first["commit"]["cid"]
        assert alice_commits[-1].commit.encode() == second["commit"]["cid"]
        assert alice_commits[-1].since == alice_commits[-2].rev
        kinds = [type(e) for e in events if getattr(e, "did", getattr(e, "repo", None)) == bob["did"]]
        assert kinds[:2] == [IdentityEvent, AccountEvent] and CommitEvent in kinds

        base = f"{relay.url}/xrpc/com.atproto.sync."
        status, body = await get_json(http, base + "getRepoStatus", {"did": alice["did"]})
        assert status == 200 and body == {"did": alice["did"], "active": True, "rev": second["commit"]["rev"]}
        status, body = await get_json(http, base + "getLatestCommit", {"did": alice["did"]})
        assert status == 200 and body == {"cid": second["commit"]["cid"], "rev": second["commit"]["rev"]}
        status, body = await get_json(http, base + "getRepoStatus", {"did": "did:plc:unknownunknownunknown"})
        assert status == 400 and body["error"] == "RepoNotFound"

        await relay.idle()
        status, body = await get_json(http, base + "listRepos", {"limit": "1"})
        assert status == 200 and len(body["repos"]) == 1 and "cursor" in body
        status, rest = await get_json(http, base + "listRepos", {"cursor": body["cursor"]})
        listed = {r["did"]: r for r in body["repos"] + rest["repos"]}
        assert set(listed) == {alice["did"], bob["did"]}
        assert listed[alice["did"]]["head"] == second["commit"]["cid"] and listed[alice["did"]]["active"]

        status, body = await get_json(
            http, base + "listReposByCollection", {"collection": "com.example.note"}
        )
        assert status == 200 and body["repos"] == [{"did": bob["did"]}]
        status, body = await get_json(
            http, base + "listReposByCollection", {"collection": "app.bsky.feed.post"}
        )
        assert body["repos"] == [{"did": alice["did"]}]

        status, body = await get_json(http, base + "listHosts")
        assert status == 200
        (host,) = body["hosts"]
        assert host["hostname"] == pds.hostname and host["status"] == "active" and host["accountCount"] == 2
        assert host["seq"] >= 1
        status, body = await get_json(http, base + "getHostStatus", {"hostname": pds.hostname})
        assert status == 200 and body["hostname"] == pds.hostname and body["status"] == "active"
        status, body = await get_json(http, base + "getHostStatus", {"hostname": "nowhere.example.com"})
        assert status == 400 and body["error"] == "HostNotFound"
    finally:
        await relay.close()
        await pds.runner.cleanup()
