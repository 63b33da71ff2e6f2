"""Event-stream framing and the typed messages of ``com.atproto.sync.subscribeRepos``.

Spec: atproto.com/specs/event-stream ("Framing", "Sequence Numbers") and atproto.com/specs/sync, lexicon
``com.atproto.sync.subscribeRepos``. A frame is two concatenated DRISL items: a header
(``{"op": 1, "t": "#commit"}`` for messages, ``{"op": -1}`` for errors) and a body map without ``$type``.

Framing or CBOR errors are hard errors (the consumer drops the connection): :class:`StreamError`. A frame with
an unknown ``op`` or ``t`` decodes to :class:`UnknownEvent`, which consumers skip. Known message types are
checked against the lexicon (required fields, types, DID/TID syntax, size caps); unknown body fields are
ignored, as the spec asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from cbrrr import _cbrrr  # type: ignore[attr-defined]  # the only entry point that reports item length

from atstack.core.cbor import CBORDecodeError, check_data_model_tree
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID, CODEC_DAG_CBOR, InvalidCID, check_cid_bytes, is_blessed
from atstack.core.repo_op import RepoOp
from atstack.core.resequence import resequenced
from atstack.core.syntax import InvalidSyntax, is_valid_did, is_valid_handle, is_valid_tid, split_repo_path

__all__ = [
    "MAX_COMMIT_BLOCKS_SIZE",
    "MAX_COMMIT_OPS",
    "MAX_FRAME_SIZE",
    "MAX_SEQ",
    "MAX_SYNC_BLOCKS_SIZE",
    "OP_ERROR",
    "OP_MESSAGE",
    "AccountEvent",
    "CommitEvent",
    "ErrorFrame",
    "Event",
    "Frame",
    "IdentityEvent",
    "InfoEvent",
    "StreamError",
    "SyncEvent",
    "UnknownEvent",
    "decode_event",
    "decode_frame",
    "encode_error",
    "encode_event",
    "encode_message",
    "parse_event",
]

OP_MESSAGE = 1
OP_ERROR = -1
MAX_FRAME_SIZE = 5_000_000
MAX_COMMIT_BLOCKS_SIZE = 2_000_000
MAX_SYNC_BLOCKS_SIZE = 10_000
MAX_COMMIT_OPS = 200
MAX_SEQ = 2**53  # exclusive: seq must stay exact in a JavaScript double
_ACTIONS = frozenset(("create", "update", "delete"))


class StreamError(ValueError):
    """A frame is malformed or a known message type breaks its lexicon (reason in the message)."""


@dataclass(slots=True)
class Frame:
    op: int
    t: str | None
    body: dict[str, Any]


# --- framing ---------------------------------------------------------------------------------------------


def _header_bytes(t: str) -> bytes:
    return cbor_encode({"op": OP_MESSAGE, "t": t})


_HEADER_CACHE: dict[str, bytes] = {}
_ERROR_HEADER = cbor_encode({"op": OP_ERROR})


def encode_message(t: str, body: dict[str, Any]) -> bytes:
    """A message frame; ``t`` is the short def name with its ``#`` (e.g. ``"#commit"``)."""
    header = _HEADER_CACHE.get(t)
    if header is None:
        if not isinstance(t, str) or not t:
            raise StreamError("message type must be a non-empty string")
        header = _HEADER_CACHE.setdefault(t, _header_bytes(t))
    return header + cbor_encode(body)


def encode_error(error: str, message: str | None = None) -> bytes:
    """An error frame; the sender closes the stream right after it."""
    body: dict[str, Any] = {"error": error}
    if message is not None:
        body["message"] = message
    return _ERROR_HEADER + cbor_encode(body)


def decode_frame(data: bytes | memoryview, *, max_size: int = MAX_FRAME_SIZE) -> Frame:
    """Split and strictly decode one frame: exactly a header map and a body map, nothing after."""
    if len(data) > max_size:
        raise StreamError(f"frame of {len(data)} bytes exceeds limit of {max_size}")
    if type(data) is not bytes:
        data = bytes(data)
    try:
        header, header_len = _cbrrr.decode_dag_cbor(data, CID, False)
        check_data_model_tree(header)
    except (ValueError, TypeError, RecursionError) as exc:
        raise StreamError(f"invalid frame header: {exc}") from None
    if header_len >= len(data):
        raise StreamError("frame has no body")
    try:
        body = cbor_decode(data[header_len:], max_size=max_size)
    except CBORDecodeError as exc:  # includes trailing bytes after the body
        raise StreamError(f"invalid frame body: {exc}") from None
    if type(header) is not dict:
        raise StreamError("frame header is not a map")
    op = header.get("op")
    if type(op) is not int:
        raise StreamError("frame header needs an integer op")
    t = header.get("t")
    if op == OP_MESSAGE and type(t) is not str:
        raise StreamError("message frame header needs a string t")
    if t is not None and type(t) is not str:
        raise StreamError("frame header t must be a string")
    if type(body) is not dict:
        raise StreamError("frame body is not a map")
    return Frame(op, t if op != OP_ERROR else None, body)


# --- field checks ----------------------------------------------------------------------------------------


def _fail(t: str, key: str, what: str) -> StreamError:
    return StreamError(f"{t}: {key} {what}")


def _seq(body: dict[str, Any], t: str) -> int:
    seq = body.get("seq")
    if type(seq) is not int:
        raise _fail(t, "seq", "must be an integer")
    if not 0 < seq < MAX_SEQ:
        raise _fail(t, "seq", "must be in 1..2^53-1")
    return seq


def _str(body: dict[str, Any], key: str, t: str, *, optional: bool = False) -> Any:
    value = body.get(key)
    if value is None and optional and key not in body:
        return None
    if type(value) is not str:
        raise _fail(t, key, "must be a string")
    return value


def _bool(body: dict[str, Any], key: str, t: str) -> bool:
    value = body.get(key)
    if type(value) is not bool:
        raise _fail(t, key, "must be a boolean")
    return value


def _did(body: dict[str, Any], key: str, t: str) -> str:
    value = _str(body, key, t)
    if not is_valid_did(value):
        raise _fail(t, key, f"is not a valid DID: {value[:100]!r}")
    return value


def _tid(value: Any, key: str, t: str) -> str:
    if type(value) is not str or not is_valid_tid(value):
        raise _fail(t, key, "must be a TID string")
    return value


def _cid(value: Any, key: str, t: str, *, dag_cbor: bool = False) -> CID:
    """A cid-link that is a well-formed CIDv1 (cbrrr does not look inside tag 42); commits and MST roots
    must moreover be blessed dag-cbor CIDs."""
    if type(value) is not CID:
        raise _fail(t, key, "must be a cid-link")
    if dag_cbor:
        if not is_blessed(value, CODEC_DAG_CBOR):
            raise _fail(t, key, "must be a dag-cbor sha2-256 CID")
    elif not is_blessed(value):
        try:
            check_cid_bytes(value.cid_bytes)
        except InvalidCID as exc:
            raise _fail(t, key, f"is not a valid CID: {exc}") from None
    return value


def _blocks(body: dict[str, Any], t: str, limit: int) -> bytes:
    value = body.get("blocks")
    if type(value) is not bytes:
        raise _fail(t, "blocks", "must be bytes")
    if len(value) > limit:
        raise _fail(t, "blocks", f"of {len(value)} bytes exceeds limit of {limit}")
    return value


def _op(raw: Any, t: str) -> RepoOp:
    if type(raw) is not dict:
        raise _fail(t, "ops", "items must be maps")
    action = raw.get("action")
    if action not in _ACTIONS:
        raise _fail(t, "ops", f"action {action!r} is not create/update/delete")
    path = raw.get("path")
    if type(path) is not str:
        raise _fail(t, "ops", "path must be a string")
    try:
        split_repo_path(path)
    except InvalidSyntax as exc:
        raise _fail(t, "ops", f"path {path[:300]!r} is invalid: {exc}") from None
    if "cid" not in raw:
        raise _fail(t, "ops", "cid is required (null on delete)")
    cid = raw["cid"]
    if cid is not None:
        _cid(cid, "ops cid", t)
    prev = raw.get("prev")
    if "prev" in raw:
        _cid(prev, "ops prev", t)
    try:
        return RepoOp(action, path, cid, prev)
    except ValueError as exc:
        raise _fail(t, "ops", f"{action} {path[:300]!r}: {exc}") from None


def _op_body(op: RepoOp) -> dict[str, Any]:
    out: dict[str, Any] = {"action": op.action, "path": op.path, "cid": op.cid}
    if op.prev is not None:
        out["prev"] = op.prev
    return out


# --- message types ---------------------------------------------------------------------------------------


class _Message:
    __slots__ = ()
    TYPE: ClassVar[str]

    def to_body(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_frame(self) -> bytes:
        return encode_message(self.TYPE, self.to_body())


@dataclass(slots=True)
class CommitEvent(_Message):
    TYPE: ClassVar[str] = "#commit"
    seq: int
    repo: str
    commit: CID
    rev: str
    since: str | None
    blocks: bytes
    ops: list[RepoOp]
    time: str
    prev_data: CID | None = None
    blobs: list[CID] = field(default_factory=list)
    rebase: bool = False
    too_big: bool = False
    # The frame this was parsed from and where its seq sits (atstack.core.resequence), if remembered.
    _wire: tuple[bytes, int, int, tuple[Any, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def to_frame(self) -> bytes:
        return resequenced(self) or encode_message(self.TYPE, self.to_body())

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> CommitEvent:
        t = cls.TYPE
        if "since" not in body:
            raise _fail(t, "since", "is required (null for the first commit)")
        since = body["since"]
        if since is not None:
            _tid(since, "since", t)
        ops_raw = body.get("ops")
        if type(ops_raw) is not list:
            raise _fail(t, "ops", "must be an array")
        if len(ops_raw) > MAX_COMMIT_OPS:
            raise _fail(t, "ops", f"has {len(ops_raw)} items, limit is {MAX_COMMIT_OPS}")
        blobs = body.get("blobs")
        if type(blobs) is not list:
            raise _fail(t, "blobs", "must be an array of cid-links")
        for blob in blobs:
            _cid(blob, "blobs", t)
        prev_data = body.get("prevData")
        if "prevData" in body:
            _cid(prev_data, "prevData", t, dag_cbor=True)
        return cls(
            seq=_seq(body, t),
            repo=_did(body, "repo", t),
            commit=_cid(body.get("commit"), "commit", t, dag_cbor=True),
            rev=_tid(body.get("rev"), "rev", t),
            since=since,
            blocks=_blocks(body, t, MAX_COMMIT_BLOCKS_SIZE),
            ops=[_op(o, t) for o in ops_raw],
            time=_str(body, "time", t),
            prev_data=prev_data,
            blobs=blobs,
            rebase=_bool(body, "rebase", t),
            too_big=_bool(body, "tooBig", t),
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": self.seq,
            "rebase": self.rebase,
            "tooBig": self.too_big,
            "repo": self.repo,
            "commit": self.commit,
            "rev": self.rev,
            "since": self.since,
            "blocks": self.blocks,
            "ops": [_op_body(op) for op in self.ops],
            "blobs": self.blobs,
            "time": self.time,
        }
        if self.prev_data is not None:
            body["prevData"] = self.prev_data
        return body


@dataclass(slots=True)
class SyncEvent(_Message):
    TYPE: ClassVar[str] = "#sync"
    seq: int
    did: str
    blocks: bytes
    rev: str
    time: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SyncEvent:
        t = cls.TYPE
        return cls(
            seq=_seq(body, t),
            did=_did(body, "did", t),
            blocks=_blocks(body, t, MAX_SYNC_BLOCKS_SIZE),
            rev=_tid(body.get("rev"), "rev", t),
            time=_str(body, "time", t),
        )

    def to_body(self) -> dict[str, Any]:
        return {"seq": self.seq, "did": self.did, "blocks": self.blocks, "rev": self.rev, "time": self.time}


@dataclass(slots=True)
class IdentityEvent(_Message):
    TYPE: ClassVar[str] = "#identity"
    seq: int
    did: str
    time: str
    handle: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> IdentityEvent:
        t = cls.TYPE
        handle = _str(body, "handle", t, optional=True)
        if handle is not None and not is_valid_handle(handle):
            raise _fail(t, "handle", f"is not a valid handle: {handle[:300]!r}")
        return cls(seq=_seq(body, t), did=_did(body, "did", t), time=_str(body, "time", t), handle=handle)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": self.seq, "did": self.did, "time": self.time}
        if self.handle is not None:
            body["handle"] = self.handle
        return body


@dataclass(slots=True)
class AccountEvent(_Message):
    TYPE: ClassVar[str] = "#account"
    seq: int
    did: str
    time: str
    active: bool
    status: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> AccountEvent:
        t = cls.TYPE
        return cls(
            seq=_seq(body, t),
            did=_did(body, "did", t),
            time=_str(body, "time", t),
            active=_bool(body, "active", t),
            status=_str(body, "status", t, optional=True),
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": self.seq, "did": self.did, "time": self.time, "active": self.active}
        if self.status is not None:
            body["status"] = self.status
        return body


@dataclass(slots=True)
class InfoEvent(_Message):
    TYPE: ClassVar[str] = "#info"
    name: str
    message: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> InfoEvent:
        t = cls.TYPE
        return cls(name=_str(body, "name", t), message=_str(body, "message", t, optional=True))

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.message is not None:
            body["message"] = self.message
        return body


@dataclass(slots=True)
class ErrorFrame:
    """An ``op: -1`` frame (e.g. ``FutureCursor``, ``ConsumerTooSlow``)."""

    error: str
    message: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ErrorFrame:
        return cls(error=_str(body, "error", "error"), message=_str(body, "message", "error", optional=True))

    def to_frame(self) -> bytes:
        return encode_error(self.error, self.message)


@dataclass(slots=True)
class UnknownEvent:
    """A frame with an ``op`` or ``t`` this code does not know; kept so callers can log and skip it."""

    op: int
    t: str | None
    body: dict[str, Any]

    def to_frame(self) -> bytes:
        header: dict[str, Any] = {"op": self.op}
        if self.t is not None:
            header["t"] = self.t
        return cbor_encode(header) + cbor_encode(self.body)


Event = CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent | ErrorFrame | UnknownEvent

_MESSAGE_TYPES: dict[str, Any] = {
    cls.TYPE: cls for cls in (CommitEvent, SyncEvent, IdentityEvent, AccountEvent, InfoEvent)
}


def parse_event(frame: Frame) -> Event:
    """Typed view of a decoded frame; raises :class:`StreamError` if a known type breaks its lexicon."""
    if frame.op == OP_ERROR:
        return ErrorFrame.from_body(frame.body)
    if frame.op == OP_MESSAGE:
        cls = _MESSAGE_TYPES.get(frame.t)  # type: ignore[arg-type]
        if cls is not None:
            return cls.from_body(frame.body)
    return UnknownEvent(frame.op, frame.t, frame.body)


def decode_event(data: bytes | memoryview, *, max_size: int = MAX_FRAME_SIZE) -> Event:
    """:func:`decode_frame` then :func:`parse_event`."""
    return parse_event(decode_frame(data, max_size=max_size))


def encode_event(event: Event) -> bytes:
    return event.to_frame()
