"""The did:plc directory's HTTP API, compatible with plc.directory.

Spec: did:plc method specification v0.3.0 ("DID Resolution", "Audit Logs", "Bulk Export") and the
directory's OpenAPI description; behaviour anchored on the reference server (``packages/server``):

* ``GET /<did>`` → DID document (``application/did+ld+json``); ``/<did>/data`` → PLC state. Unknown DID →
  404 ``DID not registered: <did>``; tombstoned → 410 ``DID not available: <did>`` (as plc.directory
  answers; the reference code says 404 but its OpenAPI and the live service say 410).
* ``/<did>/log`` (valid chain), ``/<did>/log/audit`` (``{did, operation, cid, nullified, createdAt}``,
  nullified included), ``/<did>/log/last`` — these still answer for a tombstoned DID.
* ``POST /<did>`` with a signed operation → 200 (empty body) or 400 ``{"message": reason}``, changing nothing.
* ``GET /export?count=&after=`` → JSON lines, at most 1000: ``after`` absent or a timestamp → the legacy
  entries in ``createdAt`` order; ``after`` an integer → ``sequenced_op`` entries in ``seq`` order.
* Errors are ``{"message": "…"}`` JSON, like the reference server's.

Differences on purpose: ``GET /`` answers a short text banner instead of redirecting to the project site,
and re-submitting an operation already in the DID's valid log answers 200 without change (a client retrying
after a lost response would otherwise be told its own operation is invalid).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from atstack import __version__
from atstack.core.plc_op import (
    InvalidOperation,
    check_op_limits,
    check_op_shape,
    op_to_data,
    op_to_did_doc,
)
from atstack.plc.store import PlcStore, to_ms

__all__ = ["BANNER", "EXPORT_MAX", "PlcHandlers"]

log = logging.getLogger("atstack.plc")

EXPORT_MAX = 1000
DID_DOC_TYPE = "application/did+ld+json"
JSONLINES_TYPE = "application/jsonlines"
BANNER = f"""atstack plc {__version__}: a did:plc directory

  GET  /<did>              DID document
  GET  /<did>/data         current PLC data
  GET  /<did>/log          valid operation log
  GET  /<did>/log/audit    audit log, nullified operations included
  GET  /<did>/log/last     most recent valid operation
  POST /<did>              submit a signed operation
  GET  /export?count=&after=   bulk export (JSON lines)
"""
_INT = re.compile(r"[0-9]+")


def _message(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"message": message}), content_type="application/json"
    )


def _json(value: Any, content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type=content_type)


def _not_registered(did: str) -> web.Response:
    return _message(404, f"DID not registered: {did}")


def _parse_after_time(value: str) -> int | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return to_ms(when)


class PlcHandlers:
    """Route handlers over one :class:`PlcStore`; ``clock`` stamps accepted operations."""

    def __init__(self, store: PlcStore, clock: Callable[[], datetime], registry: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.operations = Counter(
            "plc_operations_total",
            "Operations submitted, by type (create, update, tombstone, invalid) and result.",
            ("type", "result"),
            registry=registry,
        )

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.index)
        router.add_get("/_health", self.health)
        router.add_get("/export", self.export)
        router.add_get("/{did}", self.get_document)
        router.add_post("/{did}", self.submit)
        router.add_get("/{did}/data", self.get_data)
        router.add_get("/{did}/log", self.get_log)
        router.add_get("/{did}/log/audit", self.get_audit_log)
        router.add_get("/{did}/log/last", self.get_last)

    # --- service ----------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=BANNER, content_type="text/plain")

    async def health(self, request: web.Request) -> web.Response:
        try:
            await self.store.health_check()
        except Exception:
            log.exception("health check failed")
            body = {"version": __version__, "error": "Service Unavailable"}
            return web.Response(status=503, body=orjson.dumps(body), content_type="application/json")
        return _json({"version": __version__})

    # --- reads ------------------------------------------------------------------------------------------

    async def _current(self, did: str) -> dict[str, Any] | web.Response:
        """The head operation of ``did``'s valid chain, or the 404/410 answer."""
        last = await self.store.last(did)
        if last is None:
            return _not_registered(did)
        op = orjson.loads(last.op_json)
        if op.get("type") == "plc_tombstone":
            return _message(410, f"DID not available: {did}")
        return op

    async def get_document(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        op = await self._current(did)
        if isinstance(op, web.Response):
            return op
        return _json(op_to_did_doc(did, op), DID_DOC_TYPE)

    async def get_data(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        op = await self._current(did)
        if isinstance(op, web.Response):
            return op
        return _json(op_to_data(did, op))

    async def get_log(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        entries = await self.store.log(did)
        if not entries:
            return _not_registered(did)
        return _json([orjson.Fragment(e.op_json) for e in entries])

    async def get_audit_log(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        entries = await self.store.log(did, include_nullified=True)
        if not entries:
            return _not_registered(did)
        return _json([e.audit_dict() for e in entries])

    async def get_last(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        last = await self.store.last(did)
        if last is None:
            return _not_registered(did)
        return web.Response(body=last.op_json.encode(), content_type="application/json")

    async def export(self, request: web.Request) -> web.Response:
        count_param = request.query.get("count")
        count = EXPORT_MAX
        if count_param:
            digits = re.match(r"\s*[+-]?[0-9]+", count_param)  # parseInt-style: leading integer
            count = int(digits.group()) if digits else 0
            if count < 1:
                return _message(400, "Invalid count parameter")
            count = min(count, EXPORT_MAX)
        after = request.query.get("after")
        if after and _INT.fullmatch(after):
            entries = await self.store.export_after_seq(int(after), count)
            lines = [orjson.dumps(e.sequenced_dict()) for e in entries]
        else:
            after_ms = None
            if after:
                after_ms = _parse_after_time(after)
                if after_ms is None:
                    return _message(400, "Invalid after parameter")
            entries = await self.store.export_after_time(after_ms, count)
            lines = [orjson.dumps(e.audit_dict()) for e in entries]
        return web.Response(body=b"\n".join(lines), content_type=JSONLINES_TYPE)

    # --- writes -----------------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.operations.labels("invalid", "rejected").inc()
            return _message(413, "Operation too large")
        try:
            op = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.operations.labels("invalid", "rejected").inc()
            return _message(400, f"Invalid JSON body: {exc.msg}")
        try:
            # cheap checks before taking the writer; the full validation runs inside the transaction
            op_type = check_op_shape(op)
            check_op_limits(op)
            result = await self.store.add_operation(did, op, self.clock)
        except InvalidOperation as exc:
            kind = op.get("type") if isinstance(op, dict) and isinstance(op.get("type"), str) else None
            self.operations.labels(_kind_label(kind, op), "rejected").inc()
            log.info("rejected operation for %s: %s", did, exc, extra={"did": did})
            return _message(400, str(exc))
        label = _kind_label(op_type, op)
        if result.duplicate:
            self.operations.labels(label, "duplicate").inc()
        elif result.nullified:
            self.operations.labels(label, "recovery").inc()
            log.info(
                "recovery for %s nullified %d operations",
                did,
                len(result.nullified),
                extra={"did": did, "cid": result.cid, "nullified": list(result.nullified)},
            )
        else:
            self.operations.labels(label, "accepted").inc()
        return web.Response(status=200)


def _kind_label(op_type: str | None, op: Any) -> str:
    if op_type == "plc_tombstone":
        return "tombstone"
    if op_type in ("plc_operation", "create"):
        return "create" if op.get("prev") is None else "update"
    return "invalid"
