"""Blob bookkeeping beyond the write path: garbage collection, missing blobs, takedowns (checklist §11).

:mod:`.blobs` holds what a record write needs (rows, references, making uploads permanent); this module
holds what the blob endpoints and the collector (:mod:`atstack.pds.blob_gc`) need:

* a temporary row is deleted only while it is still the same upload (``temp_key``) and still temporary,
  so a collector racing a record write can never delete a blob the write just made permanent;
* ``listMissingBlobs`` = referenced by a record but without a blob row (an imported repo whose blobs were
  not uploaded yet);
* a blob's ``takedown_ref`` hides it from ``getBlob`` and refuses new references and re-uploads.
"""

from __future__ import annotations

import sqlite3

from atstack.core.cid import CID
from atstack.pds.store.blobs import BlobRow, get_blob

__all__ = [
    "account_dids",
    "blob_cids",
    "delete_temp_blob",
    "is_referenced",
    "list_missing_blobs",
    "referenced_temp_blobs",
    "set_blob_takedown",
    "temp_keys",
    "touch_temp_blob",
]


def is_referenced(conn: sqlite3.Connection, did: str, cid: CID) -> bool:
    """Does some record of the account reference the blob?"""
    row = conn.execute(
        "SELECT 1 FROM record_blob WHERE did = ? AND blob_cid = ? LIMIT 1", (did, bytes(cid))
    ).fetchone()
    return row is not None


def delete_temp_blob(conn: sqlite3.Connection, did: str, cid: CID, temp_key: str) -> bool:
    """Delete the row of an upload that is still temporary under ``temp_key``; False if it changed."""
    cur = conn.execute(
        "DELETE FROM blob WHERE did = ? AND cid = ? AND temp_key = ?", (did, bytes(cid), temp_key)
    )
    return cur.rowcount > 0


def temp_keys(conn: sqlite3.Connection) -> set[str]:
    """The ``temp_key`` of every temporary blob (few at any time: uploads not yet referenced)."""
    return {r[0] for r in conn.execute("SELECT temp_key FROM blob WHERE temp_key IS NOT NULL")}


def blob_cids(conn: sqlite3.Connection, did: str) -> set[CID]:
    """Every blob row of the account, temporary or not."""
    return {CID(r[0]) for r in conn.execute("SELECT cid FROM blob WHERE did = ?", (did,))}


def account_dids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT did FROM account")}


def list_missing_blobs(
    conn: sqlite3.Connection, did: str, cursor: CID | None, limit: int
) -> list[tuple[CID, str]]:
    """``(blob cid, one referencing record path)`` for referenced blobs without a row, in CID order."""
    rows = conn.execute(
        "SELECT rb.blob_cid, min(rb.path) FROM record_blob rb WHERE rb.did = ? AND rb.blob_cid > ? "
        "AND NOT EXISTS (SELECT 1 FROM blob b WHERE b.did = rb.did AND b.cid = rb.blob_cid) "
        "GROUP BY rb.blob_cid ORDER BY rb.blob_cid LIMIT ?",
        (did, bytes(cursor) if cursor is not None else b"", limit),
    )
    return [(CID(r[0]), r[1]) for r in rows]


def set_blob_takedown(conn: sqlite3.Connection, did: str, cid: CID, takedown_ref: str | None) -> bool:
    """Take down (``takedown_ref`` set) or restore one blob; False if the account has no such blob."""
    cur = conn.execute(
        "UPDATE blob SET takedown_ref = ? WHERE did = ? AND cid = ?", (takedown_ref, did, bytes(cid))
    )
    return cur.rowcount > 0


def touch_temp_blob(conn: sqlite3.Connection, did: str, cid: CID, now: str) -> None:
    """Restart a temporary blob's time-to-live (it was uploaded again)."""
    conn.execute(
        "UPDATE blob SET created_at = ? WHERE did = ? AND cid = ? AND temp_key IS NOT NULL",
        (now, did, bytes(cid)),
    )


def referenced_temp_blobs(conn: sqlite3.Connection, limit: int) -> list[BlobRow]:
    """Temporary blobs that some record of their account references (they should be permanent)."""
    rows = conn.execute(
        "SELECT did, cid FROM blob b WHERE temp_key IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM record_blob rb WHERE rb.did = b.did AND rb.blob_cid = b.cid) LIMIT ?",
        (limit,),
    ).fetchall()
    found = [get_blob(conn, did, CID(cid)) for did, cid in rows]
    return [row for row in found if row is not None]
