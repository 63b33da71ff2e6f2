"""A deliberately misbehaving upstream: every bad event is dropped (or triggers a resync) and counted by
reason, while the good events around it all come through, once, in order."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from fake_host import FakeHost
from relay_support import Firehose, get_json, metric_value, metrics_text, start_relay

from atstack.core.cid import cid_for_cbor
from atstack.core.repo_op import RepoOp
from atstack.core.stream import CommitEvent, SyncEvent
from atstack.core.tid import tid_from_parts


def good_commits(events: list, did: str) -> list[CommitEvent]:
    return [e for e in events if type(e) is CommitEvent and e.repo == did]


async def test_misbehaving_host(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    host = await FakeHost(plc_url, http).start()
    relay = await start_relay(tmp_path / "relay", plc_url)
    try:
        good = await host.create_account("good.test")
        wrong_key = await host.create_account("wrongkey.test")
        elsewhere = await host.create_account("elsewhere.test", pds="https://pds.elsewhere.example.com")
        future = await host.create_account("future.test")
        unproven = await host.create_account("unproven.test")
        gap = await host.create_account("gap.test")
        for account in (good, wrong_key, future, unproven, gap):
            host.announce(account)
        sent_good = [good.genesis]

        async with http.post(
            f"{relay.url}/xrpc/com.atproto.sync.requestCrawl", json={"hostname": host.hostname}
        ) as resp:
            assert resp.status == 200, await resp.text()
        firehose = Firehose(relay.ws_url, http, cursor=0).start()
        await firehose.wait_for(lambda evs: len(good_commits(evs, gap.did)) == 1)

        def good_write() -> None:
            data = good.write()
            sent_good.append(data)
            host.send_commit(good.did, data)

        # 1. a commit signed with the wrong key (the relay refreshes the DID once, then drops it)
        stray_key = wrong_key.signing
        wrong_key.signing = type(stray_key)("k256", __import__("os").urandom(32))
        host.send_commit(wrong_key.did, wrong_key.write())
        wrong_key.signing = stray_key
        good_write()
        # 2. a commit for a DID whose PDS is another host
        host.send_commit(elsewhere.did, elsewhere.genesis)
        good_write()
        # 3. a replayed old rev (the good repo's previous commit again, under a new seq)
        host.send_commit(good.did, sent_good[-1])
        good_write()
        # 4. a rev far in the future
        far = tid_from_parts(int((2100 - 1970) * 365.25 * 86400 * 1e6), 0)
        host.send_commit(future.did, future.write(rev=far))
        good_write()
        # 5. a CAR slice that does not prove its ops (the op claims a record the tree does not hold)
        data = unproven.write()
        forged = [RepoOp("create", data.ops[0].path, cid_for_cbor(b"\xa1atbforged"))]
        host.send_commit(unproven.did, data, ops=forged)
        good_write()
        # 6. garbage CBOR, then a frame over the 5 MB cap: each ends the connection; the relay comes back
        connections = host.connections
        host.send_once(b"\xa2\x62op\x01\x61t\xff\xff garbage")
        good_write()
        await host.wait_connected(connections + 1)
        host.send_once(b"\x00" * 5_100_000)
        good_write()
        await host.wait_connected(connections + 2)
        # 7. a since gap: one commit never sent → resync from getRepo, a #sync, then the chain goes on
        host.send_commit(gap.did, gap.write())
        gap.write()  # skipped
        host.send_commit(gap.did, third := gap.write())
        await firehose.wait_for(lambda evs: any(type(e) is SyncEvent and e.did == gap.did for e in evs))
        host.send_commit(gap.did, after_gap := gap.write())
        good_write()

        events = await firehose.wait_for(
            lambda evs: (
                len(good_commits(evs, good.did)) == len(sent_good)
                and any(type(e) is CommitEvent and e.commit == after_gap.cid for e in evs)
            ),
            timeout=30,
        )
        await relay.idle()
        await firehose.stop()

        # every good commit exactly once, in order, with its own CID and rev
        mine = good_commits(events, good.did)
        assert [(c.commit, c.rev) for c in mine] == [(d.cid, d.rev) for d in sent_good]
        seqs = [e.seq for e in events]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
        # nothing from the bad events reached the firehose
        assert good_commits(events, wrong_key.did)[-1].rev == wrong_key.genesis.rev
        assert good_commits(events, elsewhere.did) == []
        assert len(good_commits(events, future.did)) == 1 and len(good_commits(events, unproven.did)) == 1
        # the gap: first gap commit, then a #sync for the repo at the third, then the fourth
        gap_events = [e for e in events if getattr(e, "repo", getattr(e, "did", None)) == gap.did]
        tail = [(type(e).__name__, e.rev) for e in gap_events if type(e) in (CommitEvent, SyncEvent)]
        revs = [d.rev for d in (gap.genesis,)]
        assert tail[0] == ("CommitEvent", revs[0])
        assert [t for t, _ in tail[1:]] == ["CommitEvent", "SyncEvent", "CommitEvent"]
        assert tail[-2][1] == third.rev == after_gap.since and tail[-1][1] == after_gap.rev

        text = await metrics_text(http, relay)
        for reason in (
            "bad_signature",
            "wrong_host",
            "stale_rev",
            "future_rev",
            "invalid_proof",
            "bad_frame",
            "frame_too_big",
            "chain_break",
        ):
            assert metric_value(text, "relay_events_dropped_total", reason=reason) >= 1, reason
        assert metric_value(text, "relay_resyncs_total", result="ok") == 1
        assert host.connections >= 3  # reconnected after the garbage and after the oversized frame

        status, body = await get_json(
            http, f"{relay.url}/xrpc/com.atproto.sync.getLatestCommit", {"did": gap.did}
        )
        assert status == 200 and body == {"cid": after_gap.cid.encode(), "rev": after_gap.rev}
    finally:
        await relay.close()
        await host.close()
