"""Re-sequencing a received ``#commit`` frame by splicing in the new ``seq`` instead of re-encoding it.

Spec: atproto.com/specs/event-stream ("Framing", "Sequence Numbers"). A relay passes every accepted commit on
under its own ``seq``; nothing else in the frame changes. A frame that decoded strictly is canonical DRISL,
so where its ``seq`` value sits follows from the decoded values alone: the body's map keys sort by length
then bytes, so ``ops`` comes first, then ``rev``, then ``seq``, and the length of the encoded ``ops`` array
is a sum over its items. :func:`remember_frame` works that offset out (and checks the bytes around it say
what they should) once, when the frame is parsed; :func:`resequenced` splices a new ``seq`` in later.

Only frames of exactly the lexicon's fields take this path (unknown body or op fields, which a re-encode
drops, would shift the offsets): for anything else ``remember_frame`` records nothing and the event is
encoded as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atstack.core.cbor import encode as cbor_encode
from atstack.core.cbor import encode_uint, head_len
from atstack.core.cid import CID

if TYPE_CHECKING:
    from atstack.core.stream import CommitEvent

__all__ = ["remember_frame", "resequenced"]

_COMMIT_HEADER = cbor_encode({"op": 1, "t": "#commit"})
_BODY_KEYS = frozenset(
    (
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
        "prevData",
    )
)
_OP_KEYS = frozenset(("action", "path", "cid", "prev"))
# Encoded lengths of the op map keys with their text heads: "cid" 4, "path" 5, "prev" 5, "action" 7.
_OP_FIXED = 1 + 4 + 5 + 7  # map head + the "cid", "path" and "action" keys


def _link_len(cid: CID | None) -> int:
    if cid is None:
        return 1
    n = len(cid.cid_bytes) + 1  # tag 42 holds 0x00 ‖ binary CID
    return 2 + head_len(n) + n


def remember_frame(event: CommitEvent, frame: bytes, body: dict[str, Any]) -> None:
    """Let ``event`` (parsed from ``frame``, whose decoded body is ``body``) be re-sequenced by splicing."""
    if type(frame) is not bytes or not (frame.startswith(_COMMIT_HEADER) and body.keys() <= _BODY_KEYS):
        return
    ops = body["ops"]
    n = len(_COMMIT_HEADER)
    if frame[n] != 0xA0 + len(body):  # a 1-byte map head: at most 12 fields
        return
    at = n + 1 + 4 + head_len(len(ops))  # map head, "ops" key, array head
    for raw, op in zip(ops, event.ops, strict=True):
        if not raw.keys() <= _OP_KEYS:
            return
        path = len(op.path)  # a valid repo path is ASCII
        at += _OP_FIXED + _link_len(op.cid) + head_len(path) + path + 1 + len(op.action)
        if op.prev is not None:
            at += 5 + _link_len(op.prev)
    rev = event.rev.encode()
    seq = encode_uint(event.seq)
    expect = b"crev" + bytes((0x60 + len(rev),)) + rev + b"cseq" + seq
    if frame[at : at + len(expect)] != expect:
        return
    at += len(expect) - len(seq)
    event._wire = (frame, at, len(seq), _fields(event))


def _fields(event: CommitEvent) -> tuple[Any, ...]:
    return (event.repo, event.commit, event.rev, event.since, event.blocks, event.ops, event.time,
            event.prev_data, event.blobs, event.rebase, event.too_big)  # fmt: skip


def resequenced(event: CommitEvent) -> bytes | None:
    """The remembered frame with ``event.seq`` spliced in; None when there is none or a field changed."""
    wire = event._wire
    if wire is None:
        return None
    frame, at, n, fields = wire
    if _fields(event) != fields:
        return None
    return frame[:at] + encode_uint(event.seq) + frame[at + n :]
