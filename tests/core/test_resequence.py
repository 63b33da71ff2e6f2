"""Re-sequencing a received #commit by splicing the seq: always byte-identical to re-encoding the event."""

from __future__ import annotations

from typing import Any

import pytest

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cbor import encode as cbor_encode
from atstack.core.cbor import encode_uint
from atstack.core.crypto import generate_private_key
from atstack.core.repo import CommitData, RecordWrite, Repo
from atstack.core.resequence import remember_frame
from atstack.core.stream import (
    CommitEvent,
    Event,
    _commit_fast,
    decode_event,
    decode_frame,
    encode_message,
    parse_event,
)

POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
SEQS = (1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1)


def _record(text: str) -> bytes:
    return cbor_encode({"$type": POST, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"})


def _remembering(raw: bytes) -> Event:
    """What the relay's reader does: decode, then let a #commit remember its frame."""
    frame = decode_frame(raw)
    event = parse_event(frame)
    if type(event) is CommitEvent:
        remember_frame(event, raw, frame.body)
    return event


def _commits() -> list[tuple[str, CommitData]]:
    key = generate_private_key()
    did = "did:plc:" + "a" * 24
    repo, genesis = Repo.create(MemoryBlockStore(), did, key)
    out = [(did, genesis)]  # since null, no prevData, no ops
    batches = [
        [RecordWrite.create(POST, "3l2aaaaaaaaa2", _record("one"))],
        [RecordWrite.create(POST, f"3l2aaaaaaab{i}2", _record(str(i))) for i in range(2, 8)],
        [RecordWrite.update(POST, "3l2aaaaaaaaa2", _record("edited"))],
        [RecordWrite.delete(POST, "3l2aaaaaaab22"), RecordWrite.create(LIKE, "self", _record("x" * 300))],
        [RecordWrite.create(POST, "r" * 300, _record("a long rkey: a 2-byte text head"))],
    ]
    for writes in batches:
        out.append((did, repo.apply_writes(writes, key)))
    return out


def _frame(did: str, data: CommitData, seq: int = 7, **extra: Any) -> bytes:
    body = CommitEvent(seq=seq, repo=did, commit=data.cid, rev=data.rev, since=data.since,
                       blocks=data.car_slice, ops=data.ops, time="2025-01-01T00:00:00.000Z",
                       prev_data=data.prev_data).to_body()  # fmt: skip
    body.update(extra)
    return encode_message("#commit", body)


@pytest.mark.parametrize("upstream_seq", [5, 24, 70_000, 2**40])
def test_spliced_frames_equal_reencoded_frames(upstream_seq: int) -> None:
    commits = _commits()
    kinds = set()
    for did, data in commits:
        event = _remembering(_frame(did, data, upstream_seq))
        assert type(event) is CommitEvent and event._wire is not None
        kinds.update(op.action for op in event.ops)
        for seq in SEQS:
            event.seq = seq
            spliced = event.to_frame()
            assert spliced == encode_message("#commit", event.to_body())
            assert cbor_decode(spliced[len(encode_message("#commit", {})) - 1 :])["seq"] == seq
    assert kinds == {"create", "update", "delete"}


def test_frames_with_unknown_fields_are_reencoded() -> None:
    did, data = _commits()[1]
    raw = _frame(did, data, futureField="x")
    event = _remembering(raw)
    assert type(event) is CommitEvent and event._wire is None
    event.seq = 99
    assert b"futureField" not in event.to_frame()
    # an op with an unknown field likewise
    body = cbor_decode(raw[len(encode_message("#commit", {})) - 1 :])
    del body["futureField"]
    body["ops"][0]["extra"] = 1
    event = _remembering(encode_message("#commit", body))
    assert type(event) is CommitEvent and event._wire is None


def test_unknown_fields_in_every_place_are_reencoded() -> None:
    """remember_frame tells lexicon-only maps by their size: an extra field anywhere must still count."""
    header_len = len(encode_message("#commit", {})) - 1
    checked = 0
    for did, data in _commits():
        raw = _frame(did, data)
        assert _remembering(raw)._wire is not None  # type: ignore[union-attr]
        body = cbor_decode(raw[header_len:])
        variants = [{**body, "a": 1}, {**body, "zzzzzzzzz": None}]  # sorts before "ops"; sorts last
        for i in range(len(body["ops"])):
            ops = [dict(op) for op in body["ops"]]
            ops[i]["x"] = 0
            variants.append({**body, "ops": ops})
        for variant in variants:
            event = _remembering(encode_message("#commit", variant))
            assert type(event) is CommitEvent and event._wire is None
            event.seq = 99
            assert event.to_frame() == encode_message("#commit", event.to_body())
            checked += 1
    assert checked > 15


def test_crafted_unknown_fields_cannot_fake_the_seq_position() -> None:
    """An unknown field can hold bytes that read as the expected rev and seq exactly where a lexicon-only
    frame would have them: only the size checks on the maps keep remember_frame from splicing there."""
    did, data = _commits()[1]  # one create op
    body = cbor_decode(_frame(did, data)[len(encode_message("#commit", {})) - 1 :])
    expect = b"crev" + bytes((0x60 + len(data.rev),)) + data.rev.encode() + b"cseq" + encode_uint(7)
    ops_len = len(cbor_encode(body["ops"]))
    op_len = len(cbor_encode(body["ops"][0]))
    # the body: {"a": <bytes>, "ops": …}; "a" sorts first and its content starts where "ops" would
    in_body = {**body, "a": bytes(ops_len) + expect + bytes(4)}
    # the op: {"x": <bytes>, "cid": …}; "x" sorts first, its content starts 6 bytes into the ops array
    in_op = {**body, "ops": [{**body["ops"][0], "x": bytes(op_len - 5) + expect + bytes(4)}]}
    for crafted in (in_body, in_op):
        raw = encode_message("#commit", crafted)
        assert (
            raw.find(expect) == len(encode_message("#commit", {})) + 4 + ops_len
        )  # where the splice would go
        event = _remembering(raw)
        assert type(event) is CommitEvent and event._wire is None
        event.seq = 8
        assert event.to_frame() == encode_message("#commit", event.to_body())


def test_real_commits_take_the_fast_path() -> None:
    header_len = len(encode_message("#commit", {})) - 1
    for did, data in _commits():
        body = cbor_decode(_frame(did, data)[header_len:])
        fast = _commit_fast(CommitEvent, body)
        assert fast is not None and fast == CommitEvent._checked(body)
    assert len(_commits()) == 6


def test_a_changed_field_falls_back_to_encoding() -> None:
    did, data = _commits()[1]
    event = _remembering(_frame(did, data))
    assert type(event) is CommitEvent and event._wire is not None
    event.time = "2030-01-01T00:00:00.000Z"
    event.seq = 8
    assert event.to_frame() == encode_message("#commit", event.to_body())
    assert b"2030-01-01" in event.to_frame()


def test_plain_decoding_remembers_nothing() -> None:
    did, data = _commits()[1]
    event = decode_event(_frame(did, data))
    assert type(event) is CommitEvent and event._wire is None
