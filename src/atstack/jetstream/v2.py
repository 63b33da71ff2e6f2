"""v2 ``network.bsky.jetstream.subscribeEvents`` and ``getZstdDictionary``, per their lexicons.

Spec: checklist §13 ("v2"), ``shared/atproto/jetstream/lexicons``. Frames follow the ``xrpc.v1.json``
subprotocol (echoed when offered; also the default): ``{"$type":"message","payload":{"$type":
"network.bsky.jetstream.subscribeEvents#commit", "seq", "did", "time", "rev", "operation", "collection",
"rkey", "cid"?, "record"?}}``; ``#identity``/``#account``/``#sync`` wrap the upstream event; ``#info``
``OutdatedCursor``; error frames ``{"$type":"error","error","message"}`` then close. Server-push only: any
client data frame closes the connection (1008).

Our ``seq`` is the event's ``time_us`` (strictly increasing, so it is a valid seq); the two cursor
namespaces of the lexicon (seq below 1e15, unix µs at or above) therefore agree: a cursor resumes at the
first event with ``seq >= cursor``. A cursor below the retention floor: a seq cursor (< 1e15) is refused
before the upgrade with ``CursorTooOld`` (message names the floor seq) once anything has been trimmed (a
silent clamp would be a gap); a timestamp cursor older than the retention window (or than the trimmed
floor) is clamped up to it and announced with ``#info OutdatedCursor`` naming the seq resumed from. A
future cursor means live. Filters — ``kinds`` (≤ 4 values), ``dids`` (every kind; ≤ 10,000 values),
``collections`` (commits only, a commit without a collection passes; ≤ 100 values; a 400 when ``kinds``
excludes commit) — AND together; the caps count the raw repeated values, as the lexicon's ``maxLength``
does; the v1 names and opt-ins are 400s. ``maxMessageSizeBytes`` (one unsigned 32-bit value; empty or
repeated is a 400) caps the whole uncompressed frame. ``zstdDictionary=<id>`` must name the dictionary
``getZstdDictionary`` serves (the v1 dictionary, ID 1612007021): each frame is then one zstd frame in a
binary message.

Fan-out: each published batch is turned into v2 frames once (shared by every v2 subscriber that wants an
event); subscribers use the same bounded outbox and coalesced writer as v1, and the same replay → live
switch without gap or duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from atstack.core.syntax import is_valid_did, is_valid_nsid, is_valid_nsid_glob
from atstack.jetstream.compression import V1_DICTIONARY_ID, v1_dictionary_bytes
from atstack.jetstream.convert import JetEvent
from atstack.jetstream.fanout import Fanout
from atstack.jetstream.filters import (
    KIND_COMMIT,
    KIND_NAMES,
    MAX_WANTED_COLLECTIONS,
    MAX_WANTED_DIDS,
    InvalidFilter,
)
from atstack.jetstream.handlers import format_time_us, parse_cursor
from atstack.jetstream.metrics import JetstreamMetrics
from atstack.jetstream.subscriber import Subscriber, ws_binary_frame, ws_text_frame
from atstack.xrpc.errors import InvalidRequestError, XRPCError
from atstack.xrpc.request import XRPCRequest, XRPCResponse

__all__ = ["NSID", "SUBPROTOCOL", "SubscribeEventsEndpoint", "V2Filter", "encode_v2", "parse_v2_params"]

log = logging.getLogger("atstack.jetstream.v2")

NSID = "network.bsky.jetstream.subscribeEvents"
DICTIONARY_NSID = "network.bsky.jetstream.getZstdDictionary"
SUBPROTOCOL = "xrpc.v1.json"
TIME_CURSOR_MIN = 10**15
_KIND_OF = {name: i for i, name in enumerate(KIND_NAMES)}
_UINT32_MAX = 2**32 - 1
_REPLAY_WRITE_BYTES = 1 << 20


@dataclass(slots=True, frozen=True)
class V2Filter:
    kinds: frozenset[int] | None = None
    dids: frozenset[str] | None = None
    collections: frozenset[str] | None = None
    prefixes: tuple[str, ...] = ()
    max_message_size: int = 0

    def wants(self, event: JetEvent) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.dids is not None and event.did not in self.dids:
            return False
        if event.kind == KIND_COMMIT and event.collection and (self.collections is not None or self.prefixes):
            col = event.collection
            if not (
                (self.collections is not None and col in self.collections) or col.startswith(self.prefixes)
            ):
                return False
        return True


@dataclass(slots=True)
class V2Params:
    filter: V2Filter
    cursor: int | None
    compress: bool


def _int(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidRequestError(f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} must be between {low} and {high}")
    return value


def parse_v2_params(request: web.Request) -> V2Params:
    """The subscription's parameters, or an ``InvalidRequest`` / ``UnknownZstdDictionary`` XRPC error."""
    q = request.query
    for legacy, replacement in (("wantedCollections", "collections"), ("wantedDids", "dids")):
        if legacy in q:
            raise InvalidRequestError(f"{legacy} is the /subscribe (v1) name; use {replacement}")
    if q.get("compress") == "true" or "zstd" in request.headers.get("Socket-Encoding", ""):
        raise InvalidRequestError("compress=true / Socket-Encoding: zstd is the /subscribe (v1) opt-in; "
                                  "use zstdDictionary=<id> from getZstdDictionary")  # fmt: skip
    if "requireHello" in q:
        raise InvalidRequestError(
            "requireHello is a /subscribe (v1) option; this endpoint is server-push only"
        )
    raw_kinds = q.getall("kinds", [])
    if len(raw_kinds) > len(KIND_NAMES):
        raise InvalidRequestError(f"too many kinds values: {len(raw_kinds)} > {len(KIND_NAMES)}")
    raw_dids = q.getall("dids", [])
    if len(raw_dids) > MAX_WANTED_DIDS:
        raise InvalidRequestError(f"too many dids values: {len(raw_dids)} > {MAX_WANTED_DIDS}")
    raw_collections = q.getall("collections", [])
    if len(raw_collections) > MAX_WANTED_COLLECTIONS:
        raise InvalidRequestError(
            f"too many collections values: {len(raw_collections)} > {MAX_WANTED_COLLECTIONS}"
        )
    kinds: set[int] = set()
    for raw in raw_kinds:
        if raw not in _KIND_OF:
            raise InvalidRequestError(f"unknown kind {raw[:50]!r} (commit, identity, account, sync)")
        kinds.add(_KIND_OF[raw])
    dids = set(raw_dids)
    for did in dids:
        if not is_valid_did(did):
            raise InvalidRequestError(f"invalid DID: {did[:200]}")
    full: set[str] = set()
    prefixes: dict[str, None] = {}
    for raw in raw_collections:
        if raw.endswith(".*") and is_valid_nsid_glob(raw):
            prefixes[raw[:-1]] = None
        elif is_valid_nsid(raw):
            full.add(raw)
        else:
            raise InvalidRequestError(f"invalid collection: {raw[:200]}")
    if (full or prefixes) and kinds and KIND_COMMIT not in kinds:
        raise InvalidRequestError("collections only filters commit events, but kinds excludes commit")
    try:
        cursor = parse_cursor(q.get("cursor"))
    except InvalidFilter as exc:
        raise InvalidRequestError(str(exc)) from None
    sizes = q.getall("maxMessageSizeBytes", [])
    if len(sizes) > 1 or sizes == [""]:
        raise InvalidRequestError("maxMessageSizeBytes must be one unsigned 32-bit integer")
    max_size = (_int(sizes[0], "maxMessageSizeBytes", 0, _UINT32_MAX) or 0) if sizes else 0
    dictionary = _int(q.get("zstdDictionary"), "zstdDictionary", 1, _UINT32_MAX)
    if dictionary is not None and dictionary != V1_DICTIONARY_ID:
        raise XRPCError(400, "UnknownZstdDictionary",
                        f"unknown zstd dictionary id {dictionary}; current dictionary id is {V1_DICTIONARY_ID}")  # fmt: skip
    flt = V2Filter(
        kinds=frozenset(kinds) if kinds else None,
        dids=frozenset(dids) if dids else None,
        collections=frozenset(full) if full else None,
        prefixes=tuple(prefixes),
        max_message_size=max_size,
    )
    return V2Params(flt, cursor, dictionary is not None)


def encode_v2(event: JetEvent) -> bytes:
    """The xrpc.v1.json message frame for a stored event (built from its v1 JSON)."""
    v1 = orjson.loads(event.data)
    name = KIND_NAMES[event.kind]
    payload: dict[str, Any] = {
        "$type": f"{NSID}#{name}",
        "seq": event.time_us,
        "did": event.did,
        "time": format_time_us(event.time_us),
    }
    if event.kind == KIND_COMMIT:
        payload.update(v1["commit"])
    else:
        payload[name] = v1[name]
    return orjson.dumps({"$type": "message", "payload": payload})


def _error_frame(error: str, message: str) -> bytes:
    return orjson.dumps({"$type": "error", "error": error, "message": message})


class SubscribeEventsEndpoint:
    """The v2 subscription, fed by the same :class:`Fanout` publications as v1."""

    def __init__(
        self,
        fanout: Fanout,
        metrics: JetstreamMetrics | None = None,
        *,
        heartbeat: float | None = 30.0,
        retention_us: int | None = None,
    ) -> None:
        self.fanout = fanout
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.retention_us = retention_us
        self._live: dict[Subscriber, None] = {}
        self._all: set[Subscriber] = set()
        fanout.listeners.append(self.publish)
        if metrics is not None:
            self._sent = (metrics.events_out.labels("json"), metrics.events_out.labels("zstd"))
            self._bytes = (metrics.bytes_out.labels("json"), metrics.bytes_out.labels("zstd"))

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    @property
    def live_count(self) -> int:
        return len(self._live)

    def mount(self, router: Any) -> None:
        router.subscription(NSID)(self.serve)
        router.query(DICTIONARY_NSID)(self.get_dictionary)

    async def get_dictionary(self, req: XRPCRequest) -> XRPCResponse:
        wanted = req.params.get("id")
        if wanted is not None and str(wanted) != str(V1_DICTIONARY_ID):
            raise XRPCError(400, "DictionaryNotFound", f"no dictionary with id {wanted}")
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        return XRPCResponse(v1_dictionary_bytes(), "application/octet-stream", headers=headers)

    # publishing -----------------------------------------------------------------------------------

    def publish(self, events: Sequence[JetEvent]) -> None:
        if not self._live:
            return
        last = events[-1].time_us
        frames: dict[int, bytes] = {}
        packed: dict[int, bytes] = {}  # each event framed once per wire format, shared by every subscriber
        texts: dict[int, bytes] = {}
        compress = self.fanout.compress
        cap = self.fanout.max_outbox_bytes
        overflow = []
        for sub in self._live:
            if sub.last_time_us >= last:
                continue
            flt: V2Filter = sub.filter  # type: ignore[assignment]
            parts = []
            uncompressed = 0
            for i, e in enumerate(events):
                if e.time_us <= sub.last_time_us or not flt.wants(e):
                    continue
                text = frames.get(i)
                if text is None:
                    text = frames[i] = encode_v2(e)
                if flt.max_message_size and len(text) > flt.max_message_size:
                    continue
                uncompressed += len(text)
                if sub.compress:
                    wire = packed.get(i)
                    if wire is None:
                        wire = packed[i] = ws_binary_frame(compress(text))
                    parts.append(wire)
                else:
                    wire = texts.get(i)
                    if wire is None:
                        wire = texts[i] = ws_text_frame(text)
                    parts.append(wire)
            sub.last_time_us = last
            if not parts:
                continue
            blob = b"".join(parts)
            if self.metrics is not None:
                self._count(sub.compress, len(parts), len(blob), uncompressed)
            sub.queue.append(blob)
            sub.queued_bytes += len(blob)
            if sub.queued_bytes > cap:
                overflow.append(sub)
            else:
                sub.wake()
        for sub in overflow:
            self._live.pop(sub, None)
            sub.queue, sub.queued_bytes, sub.dropped = [], 0, True
            if self.metrics is not None:
                self.metrics.dropped.labels("too_slow").inc()
            sub.wake()

    def _count(self, compress: bool, events: int, wire: int, uncompressed: int) -> None:
        self._sent[compress].inc(events)
        self._bytes[compress].inc(wire)
        if compress and self.metrics is not None:
            self.metrics.bytes_uncompressed.inc(uncompressed)

    # serving --------------------------------------------------------------------------------------

    async def serve(self, req: XRPCRequest) -> web.WebSocketResponse:
        request = req.request
        params = parse_v2_params(request)
        store = self.fanout.store
        info: str | None = None
        cursor = params.cursor
        now = self.fanout.clock()
        if cursor is not None and cursor > now:
            cursor = None  # the future: live
        elif cursor is not None and cursor < TIME_CURSOR_MIN:
            floor = store.floor
            if floor and cursor < floor:
                raise XRPCError(
                    400, "CursorTooOld", f"cursor {cursor} is below the retention floor seq {floor}"
                )
        elif cursor is not None:
            window = now - self.retention_us if self.retention_us is not None else 0
            floor = max(store.floor, window)
            if cursor < floor:
                cursor = floor
                rows = await store.read_from(floor, 1)
                start = rows[0].time_us if rows else self.fanout.last_published + 1
                info = f"requested timestamp cursor below retention floor; starting at seq {start}"
        if self.fanout.closed:
            raise XRPCError(503, "ServiceUnavailable", "server shutting down")
        offered = [
            p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")
        ]
        ws = web.WebSocketResponse(
            compress=False,
            protocols=(SUBPROTOCOL,) if SUBPROTOCOL in offered else (),
            heartbeat=self.heartbeat,
            timeout=self.fanout.close_timeout,
            max_msg_size=64 * 1024,
        )
        await ws.prepare(request)
        sub = Subscriber(ws, params.filter, params.compress, req.ip)  # type: ignore[arg-type]
        self._all.add(sub)
        if self.metrics is not None:
            self.metrics.subscribers.labels("subscribeEvents").inc()
        task = asyncio.create_task(self._run(sub, cursor, info))
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    sub.closing = True  # server-push only
                    await self.fanout.close(
                        sub, WSCloseCode.POLICY_VIOLATION, "this stream takes no messages"
                    )
                    break
        finally:
            sub.closing = True
            sub.wake()
            self._live.pop(sub, None)
            self._all.discard(sub)
            if self.metrics is not None:
                self.metrics.subscribers.labels("subscribeEvents").dec()
            if not task.done():
                await asyncio.wait({task}, timeout=self.fanout.close_timeout)
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        return ws

    def _frame(self, text: bytes, compress: bool) -> bytes:
        return ws_binary_frame(self.fanout.compress(text)) if compress else ws_text_frame(text)

    async def _run(self, sub: Subscriber, cursor: int | None, info: str | None) -> None:
        try:
            if info is not None:
                body = {"$type": f"{NSID}#info", "name": "OutdatedCursor", "message": info}
                await sub.write(
                    [self._frame(orjson.dumps({"$type": "message", "payload": body}), sub.compress)]
                )
            if cursor is None:
                sub.last_time_us = self.fanout.last_published
                self._live[sub] = None
            elif not await self._replay(sub, cursor):
                return
            while not sub.closing:
                if sub.dropped:
                    frame = self._frame(_error_frame("ConsumerTooSlow", "outbox full; reconnect with a cursor"),
                                        sub.compress)  # fmt: skip
                    if sub.transport is not None and not sub.transport.is_closing():
                        sub.transport.write(frame)
                    await self.fanout.close(sub, WSCloseCode.POLICY_VIOLATION, "ConsumerTooSlow")
                    return
                frames = sub.queue
                if not frames:
                    await sub.wait()
                    continue
                sub.queue, sub.queued_bytes = [], 0
                await sub.write(frames)
        except (ConnectionError, RuntimeError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("v2 subscriber failed")
        finally:
            self._live.pop(sub, None)
            if not sub.ws.closed:
                await self.fanout.close(sub, WSCloseCode.GOING_AWAY)

    async def _replay(self, sub: Subscriber, start: int) -> bool:
        pos = start
        batch = self.fanout.replay_batch
        flt: V2Filter = sub.filter  # type: ignore[assignment]
        while True:
            rows = await self.fanout.store.read_from(pos, batch)
            if sub.closing:
                return False
            if rows:
                pos = rows[-1].time_us + 1
                frames = []
                uncompressed = 0
                for e in rows:
                    if flt.wants(e):
                        text = encode_v2(e)
                        if not flt.max_message_size or len(text) <= flt.max_message_size:
                            frames.append(self._frame(text, sub.compress))
                            uncompressed += len(text)
                if self.metrics is not None and frames:
                    self._count(sub.compress, len(frames), sum(map(len, frames)), uncompressed)
                begin = size = 0
                for end, wire in enumerate(frames, 1):
                    size += len(wire)
                    if size >= _REPLAY_WRITE_BYTES or end == len(frames):
                        await sub.write(frames[begin:end])
                        begin, size = end, 0
                if sub.closing:
                    return False
            if (len(rows) < batch and pos - 1 >= self.fanout.last_published) or not rows:
                sub.last_time_us = max(pos - 1, 0)
                self._live[sub] = None
                return True

    async def close_all(self) -> None:
        for sub in list(self._all):
            sub.closing = True
            sub.wake()
            if not sub.ws.closed:
                await self.fanout.close(sub, WSCloseCode.GOING_AWAY, "server shutting down")
