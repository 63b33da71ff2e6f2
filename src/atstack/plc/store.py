"""The directory's storage: one SQLite table of operations. All of the service's SQL is in this file.

``operations`` holds every accepted operation, nullified ones included, as the JSON that was submitted:

* ``seq`` — INTEGER PRIMARY KEY: acceptance order across the directory, the cursor of ``/export?after=<int>``;
* ``created_at`` — Unix milliseconds, the ``createdAt`` of the audit log; unique and increasing with
  ``seq`` (the writer assigns ``max(clock, previous + 1 ms)``), so paging ``/export`` by ``createdAt``
  returns every entry exactly once even when many operations arrive within one millisecond;
* ``(did, cid)`` is unique; ``(did, seq)`` serves the per-DID log reads.

Writes go through the database's single writer thread: the DID's history is read, the new operation is
validated against it (:func:`atstack.core.plc_op.validate_new_op`) and inserted, and the operations it
displaces are marked nullified — all in one transaction, so concurrent submissions for one DID are
serialized and each is checked against the head as it really is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from atstack.core.plc_op import op_cid, validate_new_op
from atstack.storage.sqlite import Database, Synchronous

__all__ = ["MIGRATIONS", "AddResult", "LogEntry", "PlcStore", "format_timestamp", "from_ms", "to_ms"]

MIGRATIONS: list[str] = [
    """
    CREATE TABLE operations (
        seq INTEGER PRIMARY KEY,
        did TEXT NOT NULL,
        cid TEXT NOT NULL,
        op TEXT NOT NULL,
        nullified INTEGER NOT NULL DEFAULT 0 CHECK (nullified IN (0, 1)),
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX operations_did_cid ON operations (did, cid);
    CREATE INDEX operations_did_seq ON operations (did, seq);
    CREATE UNIQUE INDEX operations_created_at ON operations (created_at);
    """,
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(when: datetime) -> int:
    """Unix milliseconds, truncated (integer arithmetic: no float rounding at the millisecond edge)."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_timestamp(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ``, the form plc.directory uses for ``createdAt``."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One stored operation; ``op_json`` is the operation's JSON text as stored."""

    seq: int
    did: str
    cid: str
    op_json: str
    nullified: bool
    created_at: int  # Unix ms

    def audit_dict(self) -> dict[str, Any]:
        """The ``/log/audit`` and legacy ``/export`` entry (the operation embedded without re-parsing)."""
        return {
            "did": self.did,
            "operation": orjson.Fragment(self.op_json),
            "cid": self.cid,
            "nullified": self.nullified,
            "createdAt": format_timestamp(self.created_at),
        }

    def sequenced_dict(self) -> dict[str, Any]:
        """The ``sequenced_op`` entry of ``/export?after=<seq>``."""
        return {
            "type": "sequenced_op",
            "seq": self.seq,
            "did": self.did,
            "operation": orjson.Fragment(self.op_json),
            "cid": self.cid,
            "createdAt": format_timestamp(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class AddResult:
    """An accepted operation: its CID and timestamp, and the CIDs it nullified.

    ``duplicate`` means the operation was already in the DID's valid log and nothing changed.
    """

    cid: str
    created_at: int
    nullified: tuple[str, ...]
    duplicate: bool = False


_COLUMNS = "seq, did, cid, op, nullified, created_at"


def _entry(row: tuple[Any, ...]) -> LogEntry:
    return LogEntry(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


# --- reads ------------------------------------------------------------------------------------------------


def _select_log(conn: sqlite3.Connection, did: str, include_nullified: bool) -> list[LogEntry]:
    sql = f"SELECT {_COLUMNS} FROM operations WHERE did = ?"
    if not include_nullified:
        sql += " AND nullified = 0"
    return [_entry(row) for row in conn.execute(sql + " ORDER BY seq", (did,))]


def _select_last(conn: sqlite3.Connection, did: str) -> LogEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM operations WHERE did = ? AND nullified = 0 ORDER BY seq DESC LIMIT 1",
        (did,),
    ).fetchone()
    return _entry(row) if row is not None else None


def _select_after_time(conn: sqlite3.Connection, after_ms: int | None, count: int) -> list[LogEntry]:
    if after_ms is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM operations ORDER BY created_at LIMIT ?", (count,))
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM operations WHERE created_at > ? ORDER BY created_at LIMIT ?",
            (after_ms, count),
        )
    return [_entry(row) for row in rows]


def _select_after_seq(conn: sqlite3.Connection, after_seq: int, count: int) -> list[LogEntry]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM operations WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, count)
    )
    return [_entry(row) for row in rows]


# --- the write transaction ------------------------------------------------------------------------------


def _add_operation(
    conn: sqlite3.Connection, did: str, op: Mapping[str, Any], now: datetime, op_json: str
) -> AddResult:
    cid = op_cid(op).encode()
    log = _select_log(conn, did, include_nullified=True)
    for entry in log:
        if entry.cid == cid and not entry.nullified:
            # A retry of an operation that was already accepted (its answer was lost): nothing to do.
            return AddResult(cid, entry.created_at, (), duplicate=True)
    latest = conn.execute("SELECT max(created_at) FROM operations").fetchone()[0]
    created_at = max(to_ms(now), latest + 1 if latest is not None else 0)
    history = [(orjson.loads(e.op_json), from_ms(e.created_at), e.nullified) for e in log]
    # raises InvalidOperation (the transaction is then rolled back and nothing changes)
    displaced = validate_new_op(did, history, op, from_ms(created_at))
    conn.execute(
        "INSERT INTO operations (did, cid, op, nullified, created_at) VALUES (?, ?, ?, 0, ?)",
        (did, cid, op_json, created_at),
    )
    if displaced:
        conn.executemany(
            "UPDATE operations SET nullified = 1 WHERE seq = ?", [(log[i].seq,) for i in displaced]
        )
    return AddResult(cid, created_at, tuple(log[i].cid for i in displaced))


class PlcStore:
    """Async access to the operations table through a :class:`Database` (single writer thread).

    :meth:`open` creates the database file and applies the migrations; :meth:`close` closes it.
    """

    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self.synchronous: Synchronous = synchronous
        self._db: Database | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        # Database() connects in its constructor; off the event loop it goes
        db = await asyncio.to_thread(Database, self.path, synchronous=self.synchronous)
        try:
            await db.migrate(MIGRATIONS)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the PLC store is not open")
        return self._db

    async def add_operation(
        self, did: str, op: Mapping[str, Any], clock: Callable[[], datetime]
    ) -> AddResult:
        """Validate ``op`` against ``did``'s stored history and store it; raises ``InvalidOperation``.

        ``clock`` is read inside the write transaction, so the recorded time is that of acceptance.
        """
        op_json = orjson.dumps(op).decode()
        return await self.db.execute_write(lambda conn: _add_operation(conn, did, op, clock(), op_json))

    async def log(self, did: str, *, include_nullified: bool = False) -> list[LogEntry]:
        """The DID's operations in order (the valid chain, or every one with ``include_nullified``)."""
        return await self.db.read(lambda conn: _select_log(conn, did, include_nullified))

    async def last(self, did: str) -> LogEntry | None:
        """The head of the DID's valid chain (None for an unknown DID)."""
        return await self.db.read(lambda conn: _select_last(conn, did))

    async def export_after_time(self, after_ms: int | None, count: int) -> list[LogEntry]:
        return await self.db.read(lambda conn: _select_after_time(conn, after_ms, count))

    async def export_after_seq(self, after_seq: int, count: int) -> list[LogEntry]:
        return await self.db.read(lambda conn: _select_after_seq(conn, after_seq, count))

    async def health_check(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1").fetchone())
