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

from atstack.core.cbor import encode_uint, head_len
from atstack.core.cid import CID
from atstack.core.framing import COMMIT_HEADER

if TYPE_CHECKING:
    from atstack.core.stream import CommitEvent

__all__ = ["remember_frame", "resequenced"]

_HEADER_LEN = len(COMMIT_HEADER)
_REQUIRED_FIELDS = 11  # every #commit field but the optional prevData
_OPS_AT = _HEADER_LEN + 1 + 4  # where the ops array starts: after the body's map head and its "ops" key
# Encoded lengths of the op map keys with their text heads: "cid" 4, "path" 5, "prev" 5, "action" 7.
_OP_FIXED = 1 + 4 + 5 + 7  # map head + the "cid", "path" and "action" keys
_LINK_LEN_36 = 2 + 2 + 37  # a cid-link to a 36-byte (blessed) CID: tag 42, byte string head, 0x00 ‖ CID
_REV_KEYS = tuple(b"crev" + bytes((0x60 + n,)) for n in range(24))  # the "rev" key, then a short text head
_SEQ_KEY = b"cseq"


def _link_len(cid: CID | None) -> int:
    if cid is None:
        return 1
    n = len(cid.cid_bytes) + 1  # tag 42 holds 0x00 ‖ binary CID
    return 2 + head_len(n) + n


def remember_frame(event: CommitEvent, frame: bytes, body: dict[str, Any]) -> None:
    """Let ``event`` (parsed from ``frame``, whose decoded body is ``body``) be re-sequenced by splicing."""
    # Parsing ``event`` from ``body`` found every required field there (and a "prev" in an op only when it
    # set op.prev), so a map holds no unknown field iff its size says so.
    if (
        type(frame) is not bytes
        or not frame.startswith(COMMIT_HEADER)
        or len(body) != _REQUIRED_FIELDS + ("prevData" in body)
        or frame[_HEADER_LEN] != 0xA0 + len(body)  # a 1-byte map head: at most 12 fields
    ):
        return
    ops = body["ops"]
    at = _OPS_AT + (1 if len(ops) < 24 else head_len(len(ops)))
    for raw, op in zip(ops, event.ops, strict=True):
        cid, prev, path = op.cid, op.prev, len(op.path)  # a valid repo path is ASCII
        if len(raw) != 3 + (prev is not None):
            return
        at += (
            _OP_FIXED
            + (1 if cid is None else _LINK_LEN_36 if len(cid.cid_bytes) == 36 else _link_len(cid))
            + (1 if path < 24 else head_len(path))
            + path
            + 1
            + len(op.action)
        )
        if prev is not None:
            at += 5 + (_LINK_LEN_36 if len(prev.cid_bytes) == 36 else _link_len(prev))
    rev = event.rev.encode()
    if len(rev) >= 24:  # a TID is 13 characters
        return
    seq = encode_uint(event.seq)
    expect = _REV_KEYS[len(rev)] + rev + _SEQ_KEY + seq
    if frame.startswith(expect, at):
        event._wire = (frame, at + len(expect) - len(seq), len(seq), _fields(event))


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
