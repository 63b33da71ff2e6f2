"""Repo heads and record counts are written at checkpoints, not with every commit: after a crash they are
rolled forward from the event log, and ``listReposByCollection`` merges the counts not yet written."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from relay_support import get_json, start_pds, start_relay

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import write_car
from atstack.core.cbor import encode as cbor_encode
from atstack.core.crypto import generate_private_key
from atstack.core.repo import RecordWrite, Repo
from atstack.core.stream import CommitEvent, SyncEvent
from atstack.core.tid import tid_from_parts
from atstack.relay.metrics import RelayMetrics
from atstack.relay.replay import roll_forward
from atstack.relay.sequencer import Sequencer
from atstack.relay.state import Account
from atstack.relay.store import MIGRATIONS
from atstack.relay.store import accounts as account_store
from atstack.relay.store import events as event_store
from atstack.storage.sqlite import Database
from atstack.xrpc.metrics import XRPCMetrics

DID = "did:plc:checkpointcheckpoint0000"
POST = "app.bsky.feed.post"


def _commits(n: int) -> list:  # type: ignore[type-arg]
    """``n`` commits of one repo: each creates two posts, and every third also deletes one."""
    key = generate_private_key()
    repo, _genesis = Repo.create(MemoryBlockStore(), DID, key)
    out, live = [], []
    base = int(time.time() * 1e6)
    for i in range(n):
        rkeys = [tid_from_parts(base + 2 * i, 1), tid_from_parts(base + 2 * i + 1, 1)]
        writes = [RecordWrite.create(POST, r, cbor_encode({"$type": POST, "text": r})) for r in rkeys]
        if i % 3 == 2:
            writes.append(RecordWrite.delete(POST, live.pop(0)))
        live.extend(rkeys)
        out.append(repo.apply_writes(writes, key))
    return out


def _accept(seqr: Sequencer, acc: Account, cd) -> None:  # type: ignore[no-untyped-def]
    """What the ingest path does for an accepted commit."""
    acc.rev, acc.commit_cid, acc.data_cid = cd.rev, cd.cid, cd.data
    seqr.count_ops(DID, cd.ops)
    evt = CommitEvent(seq=0, repo=DID, commit=cd.cid, rev=cd.rev, since=cd.since, blocks=cd.car_slice,
                      ops=cd.ops, time="2025-01-01T00:00:00.000Z", prev_data=cd.prev_data)  # fmt: skip
    seqr.emit(DID, evt)
    seqr.defer_account(acc)


async def _state(db: Database) -> tuple[account_store.AccountRow | None, dict[str, int], int | None]:
    def read(conn):  # type: ignore[no-untyped-def]
        counts = account_store.collection_counts(conn, POST, [DID])
        return account_store.get_account(conn, DID), counts, event_store.state_seq(conn)

    return await db.read(read)


async def test_heads_roll_forward_after_a_crash(tmp_path: Path) -> None:
    commits = _commits(8)
    synced = commits.pop()  # announced by a #sync (as after a resync): its head counts, it has no ops
    db = Database(tmp_path / "relay.sqlite", synchronous="NORMAL")
    await db.migrate(MIGRATIONS)
    try:
        seqr = Sequencer(db, time.time, RelayMetrics(XRPCMetrics("a")), checkpoint_interval=3600)
        await seqr.load()
        seqr.start()
        acc = Account(DID, None, "2025-01-01T00:00:00.000Z")
        seqr.save_account(acc)  # a new account goes out at once, with the first event's batch
        _accept(seqr, acc, commits[0])
        await seqr.wait_flushed()
        for cd in commits[1:]:
            _accept(seqr, acc, cd)
        acc.rev, acc.commit_cid, acc.data_cid = synced.rev, synced.cid, synced.data
        blocks = write_car([synced.cid], [(synced.cid, synced.commit_block)])
        seqr.emit(
            DID, SyncEvent(seq=0, did=DID, blocks=blocks, rev=synced.rev, time="2025-01-01T00:00:00.000Z")
        )
        seqr.defer_account(acc)
        await seqr.wait_flushed()
        row, counts, state_seq = await _state(db)
        # the events are on disk; the head and counts wait for the checkpoint
        assert seqr.latest_seq() == 8 and state_seq == 0
        assert row is not None and row.rev == commits[0].rev and counts == {}
        assert seqr.pending_records(POST) == {DID: 2 * 7 - 2}
        seqr._task.cancel()  # a crash: the pending state is never written

        seqr2 = Sequencer(db, time.time, RelayMetrics(XRPCMetrics("b")), checkpoint_interval=3600)
        await seqr2.load()
        accounts = {DID: Account.from_row(row)}
        assert await roll_forward(db, seqr2, accounts) == 8
        last = synced
        assert (accounts[DID].rev, accounts[DID].commit_cid, accounts[DID].data_cid) == (
            last.rev, last.cid, last.data
        )  # fmt: skip
        seqr2.start()  # the replay made the first batch a checkpoint
        await seqr2.wait_flushed()
        row, counts, state_seq = await _state(db)
        assert row is not None and row.rev == last.rev and row.commit_cid == last.cid.cid_bytes
        assert counts == {DID: 12} and state_seq == 8
        await seqr2.close()

        # a clean stop checkpoints: nothing to replay on the next start
        seqr3 = Sequencer(db, time.time, RelayMetrics(XRPCMetrics("c")), checkpoint_interval=3600)
        await seqr3.load()
        assert await roll_forward(db, seqr3, {DID: Account.from_row(row)}) == 0
    finally:
        await db.close()


async def test_collection_listing_merges_pending_counts(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    pds = await start_pds(tmp_path / "pds", plc_url, http)
    relay = await start_relay(tmp_path / "relay", plc_url, crawl=(pds.hostname,), checkpoint_interval=3600)
    note = "com.example.note"

    async def listed(**params: str) -> dict:  # type: ignore[type-arg]
        url = f"{relay.url}/xrpc/com.atproto.sync.listReposByCollection"
        status, body = await get_json(http, url, {"collection": note, **params})
        assert status == 200, body
        return body

    try:
        users = [await pds.create_account(f"lister{i}") for i in range(3)]
        uris = [(await pds.post_record(u, "a note", note))["uri"] for u in users]
        for _ in range(200):
            if len((await listed())["repos"]) == 3:
                break
            await relay.idle()
        dids = sorted(u["did"] for u in users)
        assert [r["did"] for r in (await listed())["repos"]] == dids
        assert relay.ctx.sequencer.pending_records(note)  # served from the pending counts, not the table
        page = await listed(limit="2")
        assert [r["did"] for r in page["repos"]] == dids[:2] and page["cursor"] == dids[1]
        rest = await listed(limit="2", cursor=page["cursor"])
        assert [r["did"] for r in rest["repos"]] == dids[2:] and "cursor" not in rest

        gone = next(u for u in users if u["did"] == dids[1])
        await pds.delete_record(gone, uris[users.index(gone)])
        for _ in range(200):
            if len((await listed())["repos"]) == 2:
                break
            await relay.idle()
        assert [r["did"] for r in (await listed())["repos"]] == [dids[0], dids[2]]
    finally:
        await relay.close()
        await pds.runner.cleanup()

    # the clean stop wrote the counts: a restarted relay lists the same from its table alone
    relay = await start_relay(tmp_path / "relay", plc_url, checkpoint_interval=3600)
    try:
        assert not relay.ctx.sequencer.pending_records(note)
        assert [r["did"] for r in (await listed())["repos"]] == [dids[0], dids[2]]
    finally:
        await relay.close()


async def test_a_quiet_relay_checkpoints_when_the_interval_is_up(tmp_path: Path) -> None:
    commits = _commits(2)
    db = Database(tmp_path / "relay.sqlite", synchronous="NORMAL")
    await db.migrate(MIGRATIONS)
    try:
        seqr = Sequencer(db, time.time, RelayMetrics(XRPCMetrics("q")), checkpoint_interval=0.3)
        await seqr.load()
        seqr.start()
        acc = Account(DID, None, "2025-01-01T00:00:00.000Z")
        seqr.save_account(acc)
        _accept(seqr, acc, commits[0])  # the new account's row goes with this event's batch
        await seqr.wait_flushed()
        _accept(seqr, acc, commits[1])
        await seqr.wait_flushed()
        row, _counts, state_seq = await _state(db)
        assert row is not None and row.rev == commits[0].rev  # the event went, the new head waits
        for _ in range(200):  # no further event: the flusher's own timer writes the head
            row, counts, state_seq = await _state(db)
            if state_seq == 2:
                break
            await asyncio.sleep(0.01)
        assert state_seq == 2 and row is not None and row.rev == commits[-1].rev and counts == {DID: 4}
        await seqr.close()
    finally:
        await db.close()
