"""subscribeRepos messages → Jetstream v1 JSON events (checklist §13), stamped with increasing time_us."""

from __future__ import annotations

import orjson

from atstack.core import cbor
from atstack.core.car import write_car
from atstack.core.cid import cid_for_cbor
from atstack.core.repo_op import RepoOp
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, InfoEvent, SyncEvent
from atstack.jetstream.convert import Converter
from atstack.jetstream.filters import KIND_ACCOUNT, KIND_COMMIT, KIND_IDENTITY, KIND_SYNC

DID = "did:plc:alicealicealicealicealic"
REV = "3l3qo2vutsw2b"
TIME = "2024-09-09T19:46:02.102Z"


def _commit(ops: list[RepoOp], blocks: list[tuple]) -> CommitEvent:
    commit_block = cbor.encode({"did": DID, "version": 3})
    commit_cid = cid_for_cbor(commit_block)
    car = write_car([commit_cid], [(commit_cid, commit_block), *blocks])
    return CommitEvent(
        seq=7, repo=DID, commit=commit_cid, rev=REV, since=None, blocks=car, ops=ops, time=TIME
    )


def test_commit_ops_become_events_with_json_records() -> None:
    ref = cid_for_cbor(b"\xa0")
    record = {
        "$type": "app.bsky.feed.like",
        "createdAt": TIME,
        "subject": {"cid": ref, "uri": "at://x"},
        "n": 5,
    }
    block = cbor.encode(record)
    cid = cid_for_cbor(block)
    prev = cid_for_cbor(cbor.encode({"old": True}))
    ops = [
        RepoOp("create", "app.bsky.feed.like/3l3qo2vuowo2b", cid),
        RepoOp("update", "app.bsky.feed.like/3l3qo2vuowo2c", cid, prev),
        RepoOp("delete", "app.bsky.feed.post/3l3qo2vuowo2d", None, prev),
    ]
    times = iter([100, 100, 99])
    conv = Converter(clock=lambda: next(times))
    out = conv.convert(_commit(ops, [(cid, block)]))
    assert [e.time_us for e in out] == [100, 101, 102]  # strictly increasing even when the clock is not
    assert [e.kind for e in out] == [KIND_COMMIT] * 3
    assert [e.collection for e in out] == ["app.bsky.feed.like", "app.bsky.feed.like", "app.bsky.feed.post"]
    first = orjson.loads(out[0].data)
    assert list(first) == ["did", "time_us", "cursor", "kind", "commit"]
    assert first["cursor"] == first["time_us"] == 100  # the seq the current reference adds; ours is time_us
    assert first["commit"] == {
        "rev": REV,
        "operation": "create",
        "collection": "app.bsky.feed.like",
        "rkey": "3l3qo2vuowo2b",
        "record": {
            "$type": "app.bsky.feed.like",
            "createdAt": TIME,
            "subject": {"cid": {"$link": ref.encode()}, "uri": "at://x"},
            "n": 5,
        },
        "cid": cid.encode(),
    }
    assert list(first["commit"]) == ["rev", "operation", "collection", "rkey", "record", "cid"]
    assert orjson.loads(out[1].data)["commit"]["operation"] == "update"
    deleted = orjson.loads(out[2].data)
    assert deleted["commit"] == {
        "rev": REV,
        "operation": "delete",
        "collection": "app.bsky.feed.post",
        "rkey": "3l3qo2vuowo2d",
    }


def test_ops_with_missing_or_bad_blocks_are_dropped() -> None:
    good = cbor.encode({"$type": "a.b.c", "v": 1})
    good_cid = cid_for_cbor(good)
    missing = cid_for_cbor(cbor.encode({"not": "sent"}))
    conv = Converter(clock=lambda: 1)
    out = conv.convert(
        _commit(
            [RepoOp("create", "a.b.c/one", missing), RepoOp("create", "a.b.c/two", good_cid)],
            [(good_cid, good)],
        )
    )
    assert [orjson.loads(e.data)["commit"]["rkey"] for e in out] == ["two"]
    assert conv.dropped_ops == 1


def test_identity_account_sync_and_info() -> None:
    conv = Converter(clock=lambda: 1_700_000_000_000_000)
    ident = conv.convert(IdentityEvent(seq=3, did=DID, time=TIME, handle="alice.test"))[0]
    assert ident.kind == KIND_IDENTITY and ident.did == DID and ident.collection == ""
    assert orjson.loads(ident.data) == {
        "did": DID, "time_us": 1_700_000_000_000_000, "cursor": 1_700_000_000_000_000, "kind": "identity",
        "identity": {"did": DID, "handle": "alice.test", "seq": 3, "time": TIME},
    }  # fmt: skip
    no_handle = orjson.loads(conv.convert(IdentityEvent(seq=4, did=DID, time=TIME))[0].data)
    assert no_handle["identity"] == {"did": DID, "seq": 4, "time": TIME}
    acct = conv.convert(AccountEvent(seq=5, did=DID, time=TIME, active=False, status="deactivated"))[0]
    assert acct.kind == KIND_ACCOUNT
    body = orjson.loads(acct.data)
    assert body["account"] == {"active": False, "did": DID, "seq": 5, "status": "deactivated", "time": TIME}
    assert list(body["account"]) == ["active", "did", "seq", "status", "time"]
    sync = conv.convert(SyncEvent(seq=6, did=DID, blocks=b"\x01\x02", rev=REV, time=TIME))[0]
    assert sync.kind == KIND_SYNC
    assert orjson.loads(sync.data)["sync"]["blocks"] == {"$bytes": "AQI"}
    assert conv.convert(InfoEvent(name="OutdatedCursor")) == []


def test_record_block_that_does_not_hash_to_its_cid_is_dropped() -> None:
    good = cbor.encode({"$type": "a.b.c", "v": 1})
    cid = cid_for_cbor(good)
    tampered = cbor.encode({"$type": "a.b.c", "v": 2})
    conv = Converter(clock=lambda: 1)
    assert conv.convert(_commit([RepoOp("create", "a.b.c/one", cid)], [(cid, tampered)])) == []
    assert conv.dropped_ops == 1
