"""The typed messages of ``com.atproto.sync.subscribeRepos`` (framing: :mod:`atstack.core.framing`).

Spec: atproto.com/specs/event-stream ("Framing", "Sequence Numbers") and atproto.com/specs/sync, lexicon
``com.atproto.sync.subscribeRepos``. A frame is two concatenated DRISL items: a header
(``{"op": 1, "t": "#commit"}`` for messages, ``{"op": -1}`` for errors) and a body map without ``$type``.

Framing or CBOR errors are hard errors (the consumer drops the connection): :class:`StreamError`. A frame with
an unknown ``op`` or ``t`` decodes to :class:`UnknownEvent`, which consumers skip. Known message types are
checked against the lexicon (required fields, types, DID/TID syntax, size caps); unknown body fields are
ignored, as the spec asks. The hot path, a ``#commit`` of the common shape under a canonical header, takes
straight-line checks (``_commit_fast``); anything unusual goes through the field-by-field checks, which alone
decide what is wrong and word the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID, CODEC_DAG_CBOR, InvalidCID, check_cid_bytes, is_blessed
from atstack.core.framing import (
    MAX_FRAME_SIZE,
    OP_ERROR,
    OP_MESSAGE,
    Frame,
    StreamError,
    decode_frame,
    encode_error,
    encode_message,
)
from atstack.core.repo_op import RepoOp
from atstack.core.resequence import resequenced
from atstack.core.syntax import InvalidSyntax, is_valid_handle, is_valid_tid, split_repo_path
from atstack.core.syntax.aturi import is_valid_repo_path
from atstack.core.syntax.identifiers import _tid_match, is_valid_did_cached

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

MAX_COMMIT_BLOCKS_SIZE = 2_000_000
MAX_SYNC_BLOCKS_SIZE = 10_000
MAX_COMMIT_OPS = 200
MAX_SEQ = 2**53  # exclusive: seq must stay exact in a JavaScript double
_ACTIONS = frozenset(("create", "update", "delete"))


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
    if not is_valid_did_cached(value):
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
    if type(action) is not str or action not in _ACTIONS:
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


_DAG_CBOR_CID_PREFIX = b"\x01\x71\x12\x20"  # CIDv1 dag-cbor sha2-256: is_blessed(cid, CODEC_DAG_CBOR)
_BLESSED_CID_PREFIXES = frozenset((_DAG_CBOR_CID_PREFIX, b"\x01\x55\x12\x20"))  # ... or raw: is_blessed(cid)


def _blessed(value: Any) -> bool:
    """A cid-link to a blessed CID (which :func:`_cid` accepts without looking further)."""
    return type(value) is CID and len(b := value.cid_bytes) == 36 and b[:4] in _BLESSED_CID_PREFIXES


def _commit_fast(cls: type[CommitEvent], body: dict[str, Any]) -> CommitEvent | None:
    """:meth:`CommitEvent.from_body` for the common shape, in few calls: every field as ``_checked`` wants
    it, every CID blessed, the DID, TIDs and paths plainly valid. None for anything else, which goes to
    ``_checked``: that either accepts it (building the same event) or says what is wrong."""
    try:
        seq, repo, commit, rev, since = body["seq"], body["repo"], body["commit"], body["rev"], body["since"]
        blocks, ops_raw, time, blobs = body["blocks"], body["ops"], body["time"], body["blobs"]
        rebase, too_big = body["rebase"], body["tooBig"]
    except KeyError:
        return None
    prev_data = body.get("prevData")
    if not (
        type(seq) is int
        and 0 < seq < MAX_SEQ
        and type(repo) is str
        and is_valid_did_cached(repo)
        and type(commit) is CID
        and len(b := commit.cid_bytes) == 36
        and b[:4] == _DAG_CBOR_CID_PREFIX
        and type(rev) is str
        and len(rev) == 13
        and _tid_match(rev) is not None
        and (since is None or (type(since) is str and len(since) == 13 and _tid_match(since) is not None))
        and type(blocks) is bytes
        and len(blocks) <= MAX_COMMIT_BLOCKS_SIZE
        and type(ops_raw) is list
        and len(ops_raw) <= MAX_COMMIT_OPS
        and type(time) is str
        and type(rebase) is bool
        and type(too_big) is bool
        and type(blobs) is list
        and (not blobs or all(map(_blessed, blobs)))
    ):
        return None
    if prev_data is not None:
        if not (
            type(prev_data) is CID and len(b := prev_data.cid_bytes) == 36 and b[:4] == _DAG_CBOR_CID_PREFIX
        ):
            return None
    elif "prevData" in body:
        return None
    ops = []
    for raw in ops_raw:
        if type(raw) is not dict:
            return None
        try:
            action, path, cid = raw["action"], raw["path"], raw["cid"]
        except KeyError:
            return None
        prev = raw.get("prev")
        # exactly the cid and prev its action needs (so RepoOp takes them), and never "prev": null
        if action == "create":
            if not (
                type(cid) is CID
                and len(b := cid.cid_bytes) == 36
                and b[:4] in _BLESSED_CID_PREFIXES
                and "prev" not in raw
            ):
                return None
        elif not (
            (action == "update" and _blessed(cid) and _blessed(prev))
            or (action == "delete" and cid is None and _blessed(prev))
        ):
            return None
        if not is_valid_repo_path(path):
            return None
        ops.append(RepoOp(action, path, cid, prev))
    return cls(seq, repo, commit, rev, since, blocks, ops, time, prev_data, blobs, rebase, too_big)


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
        return _commit_fast(cls, body) or cls._checked(body)

    @classmethod
    def _checked(cls, body: dict[str, Any]) -> CommitEvent:
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
