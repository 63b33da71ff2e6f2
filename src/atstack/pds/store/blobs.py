"""Blob metadata and the record → blob references (checklist §11).

* ``blob`` — one row per ``(did, cid)``: mime type, size, and ``temp_key`` while the blob is only uploaded
  (not yet referenced by a committed record; its file is still under ``blobs/tmp/``). Temporary blobs are
  not downloadable and not listed; unreferenced ones are garbage-collected after an hour or more.
* ``record_blob`` — which record paths reference which blobs. A record write replaces its path's rows in the
  commit's transaction (:func:`set_record_blobs`); a blob no referencing path is left for is deleted
  (:func:`unreferenced`), and a temporary blob becomes permanent when a record first references it
  (:func:`make_permanent`), all within that same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from atstack.core.cid import CID

__all__ = [
    "BlobRef",
    "BlobRow",
    "delete_blob_rows",
    "get_blob",
    "get_blobs",
    "insert_blob",
    "list_blobs",
    "make_permanent",
    "old_temp_blobs",
    "record_blob_refs",
    "set_record_blobs",
    "unreferenced",
]


@dataclass(frozen=True, slots=True)
class BlobRow:
    did: str
    cid: CID
    mime_type: str
    size: int
    temp_key: str | None
    created_at: str
    takedown_ref: str | None


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A blob reference found in a record: its CID and the mime type and size the record states."""

    cid: CID
    mime_type: str
    size: int


_COLUMNS = "did, cid, mime_type, size, temp_key, created_at, takedown_ref"


def _row(r: tuple) -> BlobRow:  # type: ignore[type-arg]
    return BlobRow(r[0], CID(r[1]), r[2], r[3], r[4], r[5], r[6])


def insert_blob(
    conn: sqlite3.Connection, did: str, cid: CID, mime_type: str, size: int, temp_key: str, now: str
) -> BlobRow:
    """Record an upload. A blob the account already has keeps its row (and its permanent status)."""
    conn.execute(
        f"INSERT INTO blob ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (did, cid) DO UPDATE "
        "SET temp_key = excluded.temp_key, mime_type = excluded.mime_type WHERE blob.temp_key IS NOT NULL",
        (did, bytes(cid), mime_type, size, temp_key, now),
    )
    found = get_blob(conn, did, cid)
    assert found is not None
    return found


def get_blob(conn: sqlite3.Connection, did: str, cid: CID) -> BlobRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM blob WHERE did = ? AND cid = ?", (did, bytes(cid))).fetchone()
    return _row(row) if row is not None else None


def get_blobs(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> dict[CID, BlobRow]:
    out: dict[CID, BlobRow] = {}
    for cid in cids:
        row = get_blob(conn, did, cid)
        if row is not None:
            out[cid] = row
    return out


def make_permanent(conn: sqlite3.Connection, did: str, cid: CID) -> None:
    conn.execute("UPDATE blob SET temp_key = NULL WHERE did = ? AND cid = ?", (did, bytes(cid)))


def set_record_blobs(conn: sqlite3.Connection, did: str, path: str, cids: Iterable[CID]) -> list[CID]:
    """Replace the blob references of the record at ``path``; returns the CIDs it no longer references."""
    before = {
        CID(r[0])
        for r in conn.execute("SELECT blob_cid FROM record_blob WHERE did = ? AND path = ?", (did, path))
    }
    after = set(cids)
    dropped = before - after
    if dropped:
        conn.executemany(
            "DELETE FROM record_blob WHERE did = ? AND blob_cid = ? AND path = ?",
            [(did, bytes(c), path) for c in dropped],
        )
    added = after - before
    if added:
        conn.executemany(
            "INSERT OR IGNORE INTO record_blob (did, blob_cid, path) VALUES (?, ?, ?)",
            [(did, bytes(c), path) for c in added],
        )
    return list(dropped)


def unreferenced(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> list[CID]:
    """Those of ``cids`` that no record of the account references any more."""
    out: list[CID] = []
    for cid in cids:
        row = conn.execute(
            "SELECT 1 FROM record_blob WHERE did = ? AND blob_cid = ? LIMIT 1", (did, bytes(cid))
        ).fetchone()
        if row is None:
            out.append(cid)
    return out


def record_blob_refs(conn: sqlite3.Connection, did: str, path: str) -> list[CID]:
    rows = conn.execute("SELECT blob_cid FROM record_blob WHERE did = ? AND path = ?", (did, path))
    return [CID(r[0]) for r in rows]


def delete_blob_rows(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> None:
    conn.executemany("DELETE FROM blob WHERE did = ? AND cid = ?", [(did, bytes(c)) for c in cids])


def list_blobs(
    conn: sqlite3.Connection, did: str, *, cursor: CID | None, limit: int, since_rev: str | None = None
) -> list[CID]:
    """Permanent blobs of the account in CID order after ``cursor``; with ``since_rev``, only blobs
    referenced by records written in commits after that rev."""
    if since_rev is None:
        rows = conn.execute(
            "SELECT cid FROM blob WHERE did = ? AND temp_key IS NULL AND cid > ? ORDER BY cid LIMIT ?",
            (did, bytes(cursor) if cursor is not None else b"", limit),
        )
    else:
        rows = conn.execute(
            "SELECT DISTINCT rb.blob_cid FROM record_blob rb JOIN record r ON r.did = rb.did "
            "AND r.collection || '/' || r.rkey = rb.path WHERE rb.did = ? AND r.rev > ? AND rb.blob_cid > ? "
            "ORDER BY rb.blob_cid LIMIT ?",
            (did, since_rev, bytes(cursor) if cursor is not None else b"", limit),
        )
    return [CID(r[0]) for r in rows]


def old_temp_blobs(conn: sqlite3.Connection, before: str, limit: int) -> list[BlobRow]:
    """Temporary blobs uploaded before ``before`` (candidates for garbage collection)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM blob WHERE temp_key IS NOT NULL AND created_at < ? LIMIT ?", (before, limit)
    )
    return [_row(r) for r in rows]
