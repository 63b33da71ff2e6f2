from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from cbrrr import _cbrrr

from atstack.core.cbor import decode, encode
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw
from atstack.core.repo_op import RepoOp
from atstack.core.stream import (
    MAX_COMMIT_BLOCKS_SIZE,
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    Frame,
    IdentityEvent,
    InfoEvent,
    StreamError,
    SyncEvent,
    UnknownEvent,
    _commit_fast,
    decode_event,
    decode_frame,
    encode_error,
    encode_event,
    encode_message,
    parse_event,
)

DID = "did:plc:abcdefghijklmnopqrstuvwx"
REV = "3l2aaaaaaaa22"
TIME = "2025-01-02T03:04:05.678Z"
C1 = cid_for_cbor(b"\xa1aa\x01")
C2 = cid_for_cbor(b"\xa1aa\x02")


def _commit_event() -> CommitEvent:
    return CommitEvent(
        seq=42,
        repo=DID,
        commit=C1,
        rev=REV,
        since="3l2aaaaaaaa2a",
        blocks=b"car bytes",
        ops=[
            RepoOp("create", "app.bsky.feed.post/3l2aaaaaaaa22", C1),
            RepoOp("update", "app.bsky.actor.profile/self", C1, C2),
            RepoOp("delete", "app.bsky.feed.like/3l2aaaaaaaa22", None, C2),
        ],
        time=TIME,
        prev_data=C2,
    )


def _events() -> list[Any]:
    return [
        _commit_event(),
        CommitEvent(seq=1, repo=DID, commit=C1, rev=REV, since=None, blocks=b"", ops=[], time=TIME),
        SyncEvent(seq=7, did=DID, blocks=b"x" * 100, rev=REV, time=TIME),
        IdentityEvent(seq=8, did=DID, time=TIME),
        IdentityEvent(seq=9, did=DID, time=TIME, handle="handle.invalid"),
        AccountEvent(seq=10, did=DID, time=TIME, active=False, status="takendown"),
        AccountEvent(seq=11, did=DID, time=TIME, active=True),
        InfoEvent(name="OutdatedCursor"),
        InfoEvent(name="OutdatedCursor", message="too old"),
        ErrorFrame(error="FutureCursor"),
        ErrorFrame(error="ConsumerTooSlow", message="slow"),
    ]


def test_roundtrip_all_types() -> None:
    events = _events()
    for ev in events:
        frame = encode_event(ev)
        assert frame == ev.to_frame()
        assert decode_event(frame) == ev
    assert len(events) == 11


def test_header_bytes() -> None:
    frame = encode_message("#commit", {"a": 1})
    assert frame == encode({"op": 1, "t": "#commit"}) + encode({"a": 1})
    assert frame.startswith(b"\xa2atg#commitbop\x01")
    err = encode_error("FutureCursor", "cursor in the future")
    assert err.startswith(encode({"op": -1}))
    f = decode_frame(err)
    assert f == Frame(-1, None, {"error": "FutureCursor", "message": "cursor in the future"})
    assert decode_frame(encode_error("X")).body == {"error": "X"}


def test_commit_body_field_names() -> None:
    body = decode_frame(_commit_event().to_frame()).body
    assert set(body) == {
        "seq", "rebase", "tooBig", "repo", "commit", "rev", "since", "blocks", "ops", "blobs", "time",
        "prevData",
    }  # fmt: skip
    assert body["ops"][0] == {"action": "create", "path": "app.bsky.feed.post/3l2aaaaaaaa22", "cid": C1}
    assert body["ops"][2]["cid"] is None and body["ops"][2]["prev"] == C2
    assert "prevData" not in _events()[1].to_body()


def test_unknown_type_and_op_tolerated() -> None:
    ev = decode_event(encode_message("#newThing", {"whatever": [1, 2]}))
    assert ev == UnknownEvent(1, "#newThing", {"whatever": [1, 2]})
    assert decode_event(ev.to_frame()) == ev
    ev2 = decode_event(encode({"op": 7}) + encode({}))
    assert isinstance(ev2, UnknownEvent) and ev2.op == 7
    # unknown body fields on known types are ignored
    body = {**_events()[3].to_body(), "future": "field"}
    assert decode_event(encode_message("#identity", body)) == _events()[3]


def _commit_body() -> dict[str, Any]:
    return _commit_event().to_body()


def _mutations() -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (t, body) that must be rejected."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    required = {
        "#commit": [
            "seq",
            "rebase",
            "tooBig",
            "repo",
            "commit",
            "rev",
            "since",
            "blocks",
            "ops",
            "blobs",
            "time",
        ],
        "#sync": ["seq", "did", "blocks", "rev", "time"],
        "#identity": ["seq", "did", "time"],
        "#account": ["seq", "did", "time", "active"],
        "#info": ["name"],
    }
    bodies = {
        "#commit": _commit_body(),
        "#sync": _events()[2].to_body(),
        "#identity": _events()[4].to_body(),
        "#account": _events()[5].to_body(),
        "#info": _events()[8].to_body(),
    }
    for t, keys in required.items():
        for k in keys:
            b = dict(bodies[t])
            del b[k]
            out[f"{t} missing {k}"] = (t, b)

    def c(**kw: Any) -> tuple[str, dict[str, Any]]:
        return "#commit", {**_commit_body(), **kw}

    def op(**kw: Any) -> tuple[str, dict[str, Any]]:
        o = {"action": "create", "path": "app.bsky.feed.post/3l2aaaaaaaa22", "cid": C1}
        o.update(kw)
        return c(ops=[{k: v for k, v in o.items() if v != "DROP"}])

    out.update(
        {
            "seq zero": c(seq=0),
            "seq negative": c(seq=-5),
            "seq 2^53": c(seq=2**53),
            "seq str": c(seq="1"),
            "seq bool": c(seq=True),
            "repo not did": c(repo="alice.test"),
            "repo did with space": c(repo=DID + " "),
            "commit str": c(commit=C1.encode()),
            "commit raw codec": c(commit=cid_for_raw(b"x")),
            "commit garbage cid": c(commit=CID(b"\x01\x71\x12\x20abc")),
            "prevData raw codec": c(prevData=cid_for_raw(b"x")),
            "blob garbage cid": c(blobs=[CID(b"\x05")]),
            "op cid garbage": op(cid=CID(b"\x01\x71\x12\x05ab")),
            "rev not tid": c(rev="2024-01-01"),
            "since not tid": c(since="abc"),
            "since int": c(since=5),
            "blocks str": c(blocks="abc"),
            "blocks too big": c(blocks=b"\x00" * (MAX_COMMIT_BLOCKS_SIZE + 1)),
            "ops not list": c(ops={}),
            "ops too many": c(ops=[_commit_body()["ops"][0]] * 201),
            "blobs not cids": c(blobs=["bafy"]),
            "prevData null": c(prevData=None),
            "prevData bytes": c(prevData=b"\x01"),
            "rebase int": c(rebase=0),
            "tooBig missing type": c(tooBig=None),
            "time int": c(time=1),
            "op bad action": op(action="upsert"),
            "op path one segment": op(path="app.bsky.feed.post"),
            "op path bad nsid": op(path="nope/3l2aaaaaaaa22"),
            "op path bad rkey": op(path="app.bsky.feed.post/.."),
            "op cid missing": op(cid="DROP"),
            "op cid str": op(cid=C1.encode()),
            "op create with prev": op(prev=C2),
            "op update without prev": op(action="update"),
            "op delete with cid": op(action="delete", prev=C2),
            "op delete without prev": op(action="delete", cid=None),
            "op prev null": op(prev=None),
            "op not map": c(ops=["x"]),
            "op action list": op(action=["create"]),
            "op action missing": op(action="DROP"),
            "op update null cid": op(action="update", cid=None, prev=C2),
            "op delete cid missing": op(action="delete", cid="DROP", prev=C2),
            "op delete prev raw bytes": op(action="delete", cid=None, prev=C2.cid_bytes),
            "op path int": op(path=5),
            "blob null": c(blobs=[None]),
            "since empty": c(since=""),
            "rev uppercase": c(rev=REV.upper()),
            "sync blocks too big": ("#sync", {**_events()[2].to_body(), "blocks": b"\x00" * 10_001}),
            "sync bad did": ("#sync", {**_events()[2].to_body(), "did": "did:PLC:x"}),
            "sync rev not tid": ("#sync", {**_events()[2].to_body(), "rev": "x"}),
            "identity bad handle": ("#identity", {**_events()[4].to_body(), "handle": "not a handle"}),
            "identity handle null": ("#identity", {**_events()[4].to_body(), "handle": None}),
            "account active str": ("#account", {**_events()[5].to_body(), "active": "false"}),
            "account status int": ("#account", {**_events()[5].to_body(), "status": 3}),
            "info name int": ("#info", {"name": 1}),
            "info message int": ("#info", {"name": "x", "message": 1}),
        }
    )
    return out


def test_each_violation_rejected() -> None:
    cases = _mutations()
    for name, (t, body) in cases.items():
        frame = encode_message(t, body)
        if "garbage" not in name:  # malformed CIDs already fail the strict CBOR decode
            decode_frame(frame)
        with pytest.raises(StreamError):
            decode_event(frame)
            pytest.fail(f"accepted: {name}")
        # the typed layer checks on its own too, for frames that did not come through decode_frame
        with pytest.raises(StreamError):
            parse_event(Frame(1, t, body))
    assert len(cases) > 70


def test_sync_blocks_limit_exact() -> None:
    ok = SyncEvent(seq=1, did=DID, blocks=b"\x00" * 10_000, rev=REV, time=TIME)
    assert decode_event(ok.to_frame()) == ok


def test_error_frame_violations() -> None:
    for body in ({}, {"error": 1}, {"error": "X", "message": 2}):
        with pytest.raises(StreamError):
            decode_event(encode({"op": -1}) + encode(body))


def test_garbage_and_framing_rejected() -> None:
    good = encode_message("#info", {"name": "x"})
    cases = {
        "empty": b"",
        "garbage": b"\xff\xfe\xfd",
        "header only": encode({"op": 1, "t": "#info"}),
        "trailing bytes": good + b"\x00",
        "three items": good + encode({}),
        "header not map": encode([1]) + encode({}),
        "op missing": encode({"t": "#info"}) + encode({}),
        "op str": encode({"op": "1", "t": "#info"}) + encode({}),
        "t missing on message": encode({"op": 1}) + encode({}),
        "t int": encode({"op": 1, "t": 5}) + encode({}),
        "body not map": encode({"op": 1, "t": "#info"}) + encode([1]),
        "body float": encode({"op": 1, "t": "#info"}) + encode({"name": "x", "f": 1.5}),
        "header float": encode({"op": 1, "t": "#info", "f": 1.5}) + encode({"name": "x"}),
        "non-canonical body": encode({"op": 1, "t": "#info"}) + b"\xa2dnameax\x61a\x01",
        "truncated body": good[:-1],
    }
    for name, data in cases.items():
        with pytest.raises(StreamError):
            decode_frame(data)
            pytest.fail(f"accepted: {name}")
    assert len(cases) == 15


def test_oversize_frame_rejected() -> None:
    ev = CommitEvent(
        seq=1, repo=DID, commit=C1, rev=REV, since=None, blocks=b"\x00" * 1000, ops=[], time=TIME
    )
    frame = ev.to_frame()
    with pytest.raises(StreamError, match="limit"):
        decode_frame(frame, max_size=len(frame) - 1)
    assert decode_event(frame, max_size=len(frame)) == ev
    with pytest.raises(StreamError):
        decode_frame(b"\x00" * 5_000_001)


def test_parse_event_on_frame_and_blobs() -> None:
    ev = _commit_event()
    ev.blobs = [cid_for_raw(b"blob")]
    frame = decode_frame(ev.to_frame())
    assert parse_event(frame) == ev
    assert isinstance(parse_event(Frame(1, "#info", {"name": "x"})), InfoEvent)
    with pytest.raises(StreamError):
        encode_message("", {})


# --- the fast paths: the same answers as the full checks ---------------------------------------------------

SHA512_CID = CID(b"\x01\x71\x13\x40" + bytes(range(64)))  # a well-formed CIDv1, but not a blessed one
PATH = "app.bsky.feed.post/3l2aaaaaaaa22"


def _valid_commit_bodies() -> dict[str, tuple[bool, dict[str, Any]]]:
    """name -> (takes the fast path, body): valid #commit bodies of the common shapes and of rarer ones."""
    base = _commit_body()
    create = base["ops"][0]
    return {
        "create, update, delete": (True, base),
        "genesis": (True, _events()[1].to_body()),
        "no prevData": (True, {k: v for k, v in base.items() if k != "prevData"}),
        "raw and dag-cbor blobs": (True, {**base, "blobs": [cid_for_raw(b"blob"), C1]}),
        "rkey outside [a-zA-Z0-9]": (True, {**base, "ops": [{**create, "path": "com.example.thing/lang:en~x"}]}),
        "did:web too long to remember": (True, {**base, "repo": "did:web:" + "a" * 80 + ".example.com"}),
        "200 ops": (True, {**base, "ops": [create] * 200}),
        "unknown fields": (True, {**base, "future": 1, "ops": [{**create, "extra": True}]}),
        "rebase and tooBig set": (True, {**base, "rebase": True, "tooBig": True}),
        "sha-512 op cid": (False, {**base, "ops": [{**create, "cid": SHA512_CID}]}),
        "sha-512 op prev": (False, {**base, "ops": [{"action": "delete", "path": PATH, "cid": None, "prev": SHA512_CID}]}),
        "sha-512 blob": (False, {**base, "blobs": [SHA512_CID]}),
    }  # fmt: skip


def test_commit_fast_path_agrees_with_full_checks() -> None:
    """Every body: _commit_fast gives the event the full checks give, or None; from_body agrees with the full
    checks, event for event and error message for error message."""
    valid = _valid_commit_bodies()
    bodies = {name: body for name, (_, body) in valid.items()}
    bodies.update({name: body for name, (t, body) in _mutations().items() if t == "#commit"})
    fast_taken = errors = 0
    for name, body in bodies.items():
        fast = _commit_fast(CommitEvent, body)
        try:
            full = CommitEvent._checked(body)
        except StreamError as exc:
            assert fast is None, f"fast path accepted: {name}"
            with pytest.raises(StreamError) as info:
                CommitEvent.from_body(body)
            assert str(info.value) == str(exc), name
            errors += 1
            continue
        assert name in valid, f"full checks accepted: {name}"
        assert (fast is not None) == valid[name][0], f"fast path taken or not: {name}"
        event = CommitEvent.from_body(body)
        assert event == full and event._wire is None, name
        assert [type(op) for op in event.ops] == [RepoOp] * len(body["ops"]), name
        assert event.blobs is body["blobs"] and full.blobs is body["blobs"], name
        fast_taken += fast is not None
    assert fast_taken == sum(taken for taken, _ in valid.values()) > 5
    assert errors == len(bodies) - len(valid) > 50


def _reference_frame(data: bytes) -> Frame:
    """What decode_frame returns for a well-formed frame, by decoding the header as any other item."""
    header, n = _cbrrr.decode_dag_cbor(data, CID, False)
    return Frame(
        header["op"], header.get("t") if header["op"] != -1 else None, decode(data[n:], max_size=len(data))
    )


def test_known_headers_decode_like_any_other() -> None:
    frames = [ev.to_frame() for ev in _events()]
    frames += [
        encode_message("#commitx", {"a": 1}),  # unknown types that share a known one's first bytes
        encode_message("#comm", {"a": 1}),
        encode_message("#sync", {"a": 1}),  # a known type with a body that breaks its lexicon
        encode({"op": 1, "t": "#commit", "x": 1}) + encode(_commit_body()),  # an extra header field
        encode({"op": 2, "t": "#commit"}) + encode(_commit_body()),
    ]
    for frame in frames:
        expected = _reference_frame(frame)
        assert decode_frame(frame) == expected
        assert decode_frame(memoryview(frame)) == expected
        assert decode_frame(bytearray(frame)) == expected
    assert parse_event(decode_frame(frames[-2])) == parse_event(decode_frame(frames[0]))
    assert type(decode_event(frames[-1])) is UnknownEvent
    assert len(frames) == 16


def test_known_header_frames_still_fully_checked() -> None:
    commit_header = encode({"op": 1, "t": "#commit"})
    cases = {
        "start of a header": b"\xa2at",
        "four bytes": b"\xa2atg",
        "header cut short": commit_header[:-1],
        "header only": commit_header,
        "sync header only": encode({"op": 1, "t": "#sync"}),
        "text head longer than the frame": b"\xa2at\x77#commit",
        "body not a map": commit_header + encode([1]),
        "body truncated": commit_header + b"\xa1",
        "body with a float": commit_header + encode({"a": 1.5}),
        "body nested too deep": commit_header + b"\x81" * 40 + b"\x01",
        "body with a bad CID": commit_header + b"\xa1aa\xd8\x2a\x42\x00\x05",
        "two bodies": commit_header + encode({}) + encode({}),
        "over the size limit": commit_header + encode({"a": b"x" * 100}),
    }
    for name, data in cases.items():
        with pytest.raises(StreamError):
            decode_frame(data, max_size=100)
            pytest.fail(f"accepted: {name}")
    assert decode_frame(commit_header + encode({"a": b"x" * 80}), max_size=100).body == {"a": b"x" * 80}
    assert len(cases) == 13


def test_repo_op_checks_and_stays_frozen() -> None:
    ops = [
        RepoOp("create", PATH, C1),
        RepoOp("update", PATH, C1, C2),
        RepoOp(action="delete", path=PATH, cid=None, prev=C2),
    ]
    bad = {
        ("create", None, None): "create needs",
        ("create", C1, C2): "create needs",
        ("update", C1, None): "update needs",
        ("update", None, C2): "update needs",
        ("delete", C1, C2): "delete needs",
        ("delete", None, None): "delete needs",
    }
    for (action, cid, prev), message in bad.items():
        with pytest.raises(ValueError, match=message):
            RepoOp(action, PATH, cid, prev)  # type: ignore[arg-type]
    op = ops[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.path = "x.y.z/a"  # type: ignore[misc]
    assert op == RepoOp("create", PATH, C1) and hash(op) == hash(RepoOp("create", PATH, C1)) and op != ops[1]
    assert op.prev is None and ops[2].cid is None and ops[2].prev == C2
    assert dataclasses.replace(op, path="x.y.z/a") == RepoOp("create", "x.y.z/a", C1)
    assert [pickle.loads(pickle.dumps(o)) for o in ops] == ops == [copy.deepcopy(o) for o in ops]
    assert repr(op) == f"RepoOp(action='create', path='{PATH}', cid={C1!r}, prev=None)"
    assert len(bad) == 6
