"""The relay's parts on their own: host names, Sync 1.1 checks, the ingest queue, cursors, retention."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import write_car
from atstack.core.cbor import encode as cbor_encode
from atstack.core.crypto import generate_private_key
from atstack.core.repo import RecordWrite, Repo
from atstack.core.stream import CommitEvent, IdentityEvent, SyncEvent
from atstack.core.tid import tid_from_parts
from atstack.relay.host import InvalidHost, host_from_endpoint, normalize_hostname, subscribe_url
from atstack.relay.metrics import RelayMetrics
from atstack.relay.scheduler import PartitionedQueue
from atstack.relay.sequencer import Sequencer
from atstack.relay.state import CursorTracker, TokenBucket
from atstack.relay.store import MIGRATIONS
from atstack.relay.validate import (
    BadSignature,
    Drop,
    RepoState,
    check_rev_time,
    verify_commit_event,
    verify_sync_event,
)
from atstack.storage.sqlite import Database
from atstack.xrpc.metrics import XRPCMetrics

DID = "did:plc:abcdefghijklmnopqrstuvwx"


# --- host names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "private", "expected"),
    [
        ("PDS.Example.COM", False, "pds.example.com"),
        ("https://pds.example.com/", False, "pds.example.com"),
        ("https://pds.example.com:443", False, "pds.example.com"),
        ("wss://pds.example.com", False, "pds.example.com"),
        ("localhost:2583", True, "localhost:2583"),
        ("http://localhost:2583", True, "localhost:2583"),
        ("http://127.0.0.1:8080", True, "127.0.0.1:8080"),
        ("http://pds.example.com:80", True, "pds.example.com"),
    ],
)
def test_normalize_hostname(given: str, private: bool, expected: str) -> None:
    assert normalize_hostname(given, allow_private=private) == expected


@pytest.mark.parametrize(
    ("given", "private"),
    [
        ("", False),
        ("localhost:2583", False),
        ("localhost", False),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("pds.example.com:8443", False),
        ("pds.test", False),
        ("singlelabel", False),
        ("https://pds.example.com/xrpc", True),
        ("https://user@pds.example.com", True),
        ("ftp://pds.example.com", True),
        ("bad_name.example.com", True),
        ("-lead.example.com", True),
        ("pds.example.com?x=1", True),
    ],
)
def test_normalize_hostname_refuses(given: str, private: bool) -> None:
    with pytest.raises(InvalidHost):
        normalize_hostname(given, allow_private=private)


def test_endpoint_and_urls() -> None:
    assert host_from_endpoint("http://localhost:2583") == "localhost:2583"
    assert host_from_endpoint("https://pds.example.com") == "pds.example.com"
    assert host_from_endpoint("not a url at all") is None
    assert host_from_endpoint(None) is None
    assert subscribe_url("localhost:2583", allow_private=True).startswith("ws://localhost:2583/xrpc/")
    assert subscribe_url("localhost:2583", allow_private=False).startswith("wss://")
    assert subscribe_url("pds.example.com", allow_private=True).startswith("wss://pds.example.com/")


# --- Sync 1.1 checks -------------------------------------------------------------------------------------


def _repo() -> tuple[Repo, object, list]:
    key = generate_private_key()
    repo, genesis = Repo.create(MemoryBlockStore(), DID, key)
    return repo, key, [genesis]


def _write(repo: Repo, key: object, n: int, **kw: object):  # type: ignore[no-untyped-def]
    writes = [
        RecordWrite.create("app.bsky.feed.post", tid_from_parts(int(time.time() * 1e6) + i, 1),
                           cbor_encode({"$type": "app.bsky.feed.post", "text": str(i)}))
        for i in range(n)
    ]  # fmt: skip
    return repo.apply_writes(writes, key, **kw)  # type: ignore[arg-type]


def _event(data, **overrides: object) -> CommitEvent:  # type: ignore[no-untyped-def]
    fields = dict(seq=1, repo=DID, commit=data.cid, rev=data.rev, since=data.since, blocks=data.car_slice,
                  ops=data.ops, time="2025-01-01T00:00:00.000Z", prev_data=data.prev_data)  # fmt: skip
    fields.update(overrides)
    return CommitEvent(**fields)  # type: ignore[arg-type]


def test_verify_commit_accepts_a_chain_and_flags_breaks() -> None:
    repo, key, (genesis,) = _repo()
    pub = key.public_key  # type: ignore[attr-defined]
    now = time.time()
    first = verify_commit_event(_event(genesis), pub, None, now)
    assert first.chain_ok and first.cid == genesis.cid
    state = RepoState(genesis.rev, genesis.cid, genesis.data)
    one = _write(repo, key, 3)
    ok = verify_commit_event(_event(one), pub, state, now)
    assert ok.chain_ok and ok.commit.data == one.data
    two = _write(repo, key, 1)
    broken = verify_commit_event(_event(two), pub, state, now)  # skips `one`
    assert not broken.chain_ok


@pytest.mark.parametrize(
    "case",
    [
        "stale", "future", "no_prev_data", "wrong_key", "root_mismatch", "rev_mismatch", "forged_op", "too_big",
        "huge_record", "not_drisl", "not_a_map",
    ],
)  # fmt: skip
def test_verify_commit_drops(case: str) -> None:
    repo, key, (genesis,) = _repo()
    pub = key.public_key  # type: ignore[attr-defined]
    state = RepoState(genesis.rev, genesis.cid, genesis.data)
    data = _write(repo, key, 2)
    now = time.time()
    evt = _event(data)
    reason = {
        "stale": "stale_rev",
        "future": "future_rev",
        "no_prev_data": "missing_prev_data",
        "wrong_key": "bad_signature",
        "root_mismatch": "field_mismatch",
        "rev_mismatch": "field_mismatch",
        "forged_op": "invalid_proof",
        "too_big": "deprecated_flag",
        "huge_record": "bad_record",
        "not_drisl": "bad_record",
        "not_a_map": "bad_record",
    }[case]
    record = {
        "huge_record": cbor_encode({"$type": "app.bsky.feed.post", "text": "x" * (1 << 20)}),
        "not_drisl": b"\xa1\x61a\xf9\x3c\x00",  # a half-precision float: CBOR, but not DRISL
        "not_a_map": cbor_encode(["a", "list"]),
    }.get(case)
    if record is not None:  # signed and proven like any commit: only the record itself is wrong
        rkey = tid_from_parts(int(now * 1e6), 3)
        data = repo.apply_writes([RecordWrite.create("app.bsky.feed.post", rkey, record)], key)  # type: ignore[arg-type]
        evt = _event(data)
        state = RepoState(data.since, None, data.prev_data)
    if case == "stale":
        state = RepoState(data.rev, data.cid, data.data)
    elif case == "future":
        future = _write(repo, key, 1, rev=tid_from_parts(int((now + 3600) * 1e6), 0))
        evt = _event(future)
        state = RepoState(data.rev, data.cid, data.data)
    elif case == "no_prev_data":
        evt = _event(data, prev_data=None)
    elif case == "wrong_key":
        pub = generate_private_key().public_key
    elif case == "root_mismatch":
        evt = _event(data, commit=genesis.cid)
    elif case == "rev_mismatch":
        evt = _event(data, rev=tid_from_parts(int(now * 1e6) + 5, 9))
    elif case == "forged_op":
        evt = _event(data, ops=[data.ops[0]])  # the slice also changed a path the ops do not mention
    elif case == "too_big":
        evt = _event(data, too_big=True)
    with pytest.raises(Drop) as caught:
        verify_commit_event(evt, pub, state, now)
    assert caught.value.reason == reason
    assert isinstance(caught.value, BadSignature) == (case == "wrong_key")


def test_verify_commit_lenient_without_prev_data() -> None:
    repo, key, (_genesis,) = _repo()
    data = _write(repo, key, 1)
    verified = verify_commit_event(
        _event(data, prev_data=None), key.public_key, None, time.time(), lenient=True
    )  # type: ignore[attr-defined]
    assert verified.cid == data.cid


def test_verify_sync() -> None:
    repo, key, (genesis,) = _repo()
    pub = key.public_key  # type: ignore[attr-defined]
    data = _write(repo, key, 1)
    blocks = write_car([data.cid], [(data.cid, data.commit_block)])
    evt = SyncEvent(seq=3, did=DID, blocks=blocks, rev=data.rev, time="2025-01-01T00:00:00.000Z")
    same = verify_sync_event(evt, pub, RepoState(genesis.rev, data.cid, data.data), time.time())
    assert same.chain_ok and same.cid == data.cid
    moved = verify_sync_event(evt, pub, RepoState(genesis.rev, genesis.cid, genesis.data), time.time())
    assert not moved.chain_ok
    with pytest.raises(BadSignature):
        verify_sync_event(evt, generate_private_key().public_key, None, time.time())
    with pytest.raises(Drop) as caught:
        verify_sync_event(evt, pub, RepoState(data.rev, data.cid, data.data), time.time())
    assert caught.value.reason == "stale_rev"
    other = SyncEvent(
        seq=3, did="did:plc:zzzzzzzzzzzzzzzzzzzzzzzz", blocks=blocks, rev=data.rev, time=evt.time
    )
    with pytest.raises(Drop) as caught:
        verify_sync_event(other, pub, None, time.time())
    assert caught.value.reason == "field_mismatch"


# --- queue, cursors, rate limits -------------------------------------------------------------------------


async def test_partitioned_queue_orders_per_key_and_bounds_memory() -> None:
    handled: list[tuple[str, int]] = []
    release = asyncio.Event()
    in_flight = 0
    peak = 0

    async def handler(item: tuple[str, int]) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if item[0] == "slow" and not release.is_set():
            async with queue.io():  # a slow await gives up the CPU turn
                await release.wait()
        await asyncio.sleep(0)
        handled.append(item)
        in_flight -= 1

    queue: PartitionedQueue[tuple[str, int]] = PartitionedQueue(handler, workers=4, max_pending=10)
    queue.start()
    try:
        for i in range(5):
            await queue.submit("slow", ("slow", i))
        for i in range(5):
            await queue.submit("fast", ("fast", i))
        # "slow" is stuck but "fast" goes on: parallel across keys
        for _ in range(100):
            if len([h for h in handled if h[0] == "fast"]) == 5:
                break
            await asyncio.sleep(0.01)
        assert [h for h in handled if h[0] == "fast"] == [("fast", i) for i in range(5)]
        # the queue is bounded: with 5 stuck, 5 more fit, the 11th waits
        for i in range(5):
            await queue.submit(f"k{i}", (f"k{i}", 0))
        assert not queue.offer("late", ("late", 0))  # full: refused without queueing (the reader then waits)
        blocked = asyncio.create_task(queue.submit("late", ("late", 0)))
        await asyncio.sleep(0.05)
        assert len(queue) >= 5
        release.set()
        await asyncio.wait_for(blocked, 2)
        await asyncio.wait_for(queue.wait_idle(), 2)
        assert [h for h in handled if h[0] == "slow"] == [("slow", i) for i in range(5)]
        assert len(handled) == 16 and len(queue) == 0
    finally:
        await queue.close()


def test_cursor_tracker_advances_over_contiguous_finishes() -> None:
    tracker = CursorTracker(10)
    for seq in (11, 12, 14, 15):
        tracker.begin(seq)
    assert tracker.finish(12) is None and tracker.cursor == 10
    assert tracker.finish(11) == 12 and tracker.cursor == 12
    assert tracker.finish(15) is None
    assert tracker.finish(14) == 15 and tracker.cursor == 15 and len(tracker) == 0


async def test_token_bucket_paces() -> None:
    bucket = TokenBucket(50.0)
    started = time.monotonic()
    for _ in range(60):
        await asyncio.sleep(bucket.take_now())  # as the slurper waits before queueing the frame
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 1.0 and bucket.throttled
    unlimited = TokenBucket(None)
    assert unlimited.take_now() == 0.0
    assert not unlimited.throttled
    fresh = TokenBucket(2.0)  # a burst of one second's worth, then a wait of 1/rate per token
    assert fresh.take_now() == 0.0 and fresh.take_now() == 0.0
    assert 0.4 < fresh.take_now() <= 0.5 and fresh.throttled


# --- output log ------------------------------------------------------------------------------------------


async def test_sequencer_persists_publishes_and_trims(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    db = Database(tmp_path / "relay.sqlite", synchronous="NORMAL")
    await db.migrate(MIGRATIONS)
    try:
        seqr = Sequencer(db, lambda: now[0], RelayMetrics(XRPCMetrics("t")))
        await seqr.load()
        seqr.start()
        for i in range(30):
            seqr.emit(
                DID, IdentityEvent(seq=0, did=DID, time="2025-01-01T00:00:00.000Z", handle=f"h{i}.test")
            )
            now[0] += 60.0
        await seqr.wait_flushed()
        assert seqr.latest_seq() == 30 and seqr.oldest_seq() == 1
        rows = await seqr.read_after(25, 100)
        assert [s for s, _ in rows] == [26, 27, 28, 29, 30]
        # events 1..30 are one minute apart; keep the last ten minutes
        deleted = await seqr.trim(10 * 60.0, chunk=7)
        assert deleted == 20 and seqr.oldest_seq() == 21
        await seqr.close()
        # a restart continues the numbering, even after everything was trimmed
        now[0] += 86400
        seqr2 = Sequencer(db, lambda: now[0], RelayMetrics(XRPCMetrics("t2")))
        await seqr2.load()
        assert await seqr2.trim(60.0) == 10 and seqr2.oldest_seq() is None
        seqr2.start()
        assert seqr2.emit(DID, IdentityEvent(seq=0, did=DID, time="2025-01-01T00:00:00.000Z")) == 31
        await seqr2.close()
    finally:
        await db.close()


def test_check_rev_time_refuses_revs_beyond_the_tolerance() -> None:
    def rev_at(seconds: float) -> str:
        return tid_from_parts(int(seconds * 1_000_000), 5)

    now = 1_700_000_000.25
    for tolerance in (300.0, 10.0):
        check_rev_time(rev_at(now - 86400), now, tolerance)
        check_rev_time(rev_at(now + tolerance - 0.5), now, tolerance)
        with pytest.raises(Drop) as caught:
            check_rev_time(rev_at(now + tolerance + 2), now, tolerance)
        assert caught.value.reason == "future_rev"
    # the allowed horizon moves with the clock
    later = now + 1000
    check_rev_time(rev_at(now + 900), later, 10.0)
    with pytest.raises(Drop):
        check_rev_time(rev_at(later + 12), later, 10.0)
