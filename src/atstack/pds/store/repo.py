"""Repositories: each account's head commit, its blocks, and the index of its records.

* ``repo_root`` — the current commit (CID bytes, rev) per DID: the head a write builds on.
* ``repo_block`` — every block of the current repo state (commit, MST nodes, records) keyed by
  ``(did, cid)``, with the ``rev`` of the commit that wrote it (``getRepo?since`` reads blocks newer than a
  rev). Blocks the current state no longer needs are deleted by the write that dropped them.
* ``record`` — ``(did, collection, rkey) → cid``: the MST's content as a table, for ``getRecord``,
  ``listRecords``, ``describeRepo`` and to tell whether a record block is still used by another path.

Blocks are stored by binary CID; :func:`get_block` returns the DRISL bytes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from atstack.core.cid import CID

__all__ = [
    "RecordRow",
    "all_blocks",
    "blocks_since",
    "collections",
    "delete_blocks",
    "delete_records",
    "delete_repo",
    "get_block",
    "get_blocks",
    "get_record",
    "get_root",
    "has_block",
    "list_records",
    "put_blocks",
    "put_records",
    "record_cids_in_use",
    "repos_with_collection",
    "set_root",
]

RecordRow = tuple[str, bytes, bytes]  # (rkey, cid bytes, block)
_IN_CHUNK = 500  # bound variables per IN list (SQLite allows 32,766; short lists plan and bind fast)


def get_root(conn: sqlite3.Connection, did: str) -> tuple[CID, str] | None:
    row = conn.execute("SELECT cid, rev FROM repo_root WHERE did = ?", (did,)).fetchone()
    return (CID(row[0]), row[1]) if row is not None else None


def set_root(conn: sqlite3.Connection, did: str, cid: CID, rev: str, now: str) -> None:
    conn.execute(
        "INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev, indexed_at = excluded.indexed_at",
        (did, bytes(cid), rev, now),
    )


def get_block(conn: sqlite3.Connection, did: str, cid: CID) -> bytes | None:
    row = conn.execute(
        "SELECT content FROM repo_block WHERE did = ? AND cid = ?", (did, bytes(cid))
    ).fetchone()
    return row[0] if row is not None else None


def has_block(conn: sqlite3.Connection, did: str, cid: CID) -> bool:
    row = conn.execute("SELECT 1 FROM repo_block WHERE did = ? AND cid = ?", (did, bytes(cid))).fetchone()
    return row is not None


def get_blocks(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> dict[CID, bytes]:
    """The blocks found among ``cids`` (missing ones are simply absent from the result)."""
    found: dict[CID, bytes] = {}
    for cid in cids:
        block = get_block(conn, did, cid)
        if block is not None:
            found[cid] = block
    return found


def put_blocks(conn: sqlite3.Connection, did: str, rev: str, blocks: Iterable[tuple[CID, bytes]]) -> None:
    # A block already present keeps its original rev: it was part of the repo since then.
    conn.executemany(
        "INSERT OR IGNORE INTO repo_block (did, cid, rev, content) VALUES (?, ?, ?, ?)",
        [(did, bytes(cid), rev, block) for cid, block in blocks],
    )


def delete_blocks(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> None:
    conn.executemany("DELETE FROM repo_block WHERE did = ? AND cid = ?", [(did, bytes(c)) for c in cids])


def blocks_since(conn: sqlite3.Connection, did: str, since: str) -> Iterator[tuple[CID, bytes]]:
    rows = conn.execute(
        "SELECT cid, content FROM repo_block WHERE did = ? AND rev > ? ORDER BY rev, cid", (did, since)
    )
    return ((CID(cid), content) for cid, content in rows)


def all_blocks(conn: sqlite3.Connection, did: str) -> Iterator[tuple[CID, bytes]]:
    rows = conn.execute("SELECT cid, content FROM repo_block WHERE did = ?", (did,))
    return ((CID(cid), content) for cid, content in rows)


def delete_repo(conn: sqlite3.Connection, did: str) -> None:
    """Drop the repo state (blocks, records index, root, record → blob refs); used by import and deletion."""
    for table in ("repo_block", "record", "record_blob", "repo_root"):
        conn.execute(f"DELETE FROM {table} WHERE did = ?", (did,))


# --- records index -----------------------------------------------------------------------------------


def get_record(
    conn: sqlite3.Connection, did: str, collection: str, rkey: str, *, include_taken_down: bool = True
) -> tuple[CID, bytes] | None:
    """``(cid, block)`` of the record at ``collection/rkey``, or None.

    Writes see every record; the public reads pass ``include_taken_down=False``, so a record an admin took
    down (``record.takedown_ref``) is not found, as the reference PDS answers.
    """
    hidden = "" if include_taken_down else " AND r.takedown_ref IS NULL"
    row = conn.execute(
        "SELECT r.cid, b.content FROM record r JOIN repo_block b ON b.did = r.did AND b.cid = r.cid "
        f"WHERE r.did = ? AND r.collection = ? AND r.rkey = ?{hidden}",
        (did, collection, rkey),
    ).fetchone()
    return (CID(row[0]), row[1]) if row is not None else None


def list_records(
    conn: sqlite3.Connection, did: str, collection: str, *, limit: int, cursor: str | None, reverse: bool
) -> list[RecordRow]:
    """Records of one collection with their blocks: newest rkey first by default (the reference order),
    ascending with ``reverse``; ``cursor`` is the last rkey of the previous page (exclusive). Taken-down
    records are left out (the page still holds up to ``limit`` records)."""
    if reverse:
        where, order = "r.rkey > ?", "ASC"
        bound = cursor if cursor is not None else ""
    else:
        where, order = "r.rkey < ?", "DESC"
        bound = cursor if cursor is not None else "\U0010ffff"
    rows = conn.execute(
        "SELECT r.rkey, r.cid, b.content FROM record r JOIN repo_block b ON b.did = r.did AND b.cid = r.cid "
        f"WHERE r.did = ? AND r.collection = ? AND {where} AND r.takedown_ref IS NULL "
        f"ORDER BY r.rkey {order} LIMIT ?",
        (did, collection, bound, limit),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def collections(conn: sqlite3.Connection, did: str) -> list[str]:
    # skip-scan over the (did, collection, rkey) key: one probe per distinct collection
    out: list[str] = []
    last = ""
    while True:
        row = conn.execute(
            "SELECT collection FROM record WHERE did = ? AND collection > ? ORDER BY collection LIMIT 1",
            (did, last),
        ).fetchone()
        if row is None:
            return out
        last = row[0]
        out.append(last)


def put_records(
    conn: sqlite3.Connection, did: str, rev: str, now: str, records: Iterable[tuple[str, str, CID]]
) -> None:
    """Insert or replace ``(collection, rkey, cid)`` rows."""
    conn.executemany(
        "INSERT INTO record (did, collection, rkey, cid, rev, indexed_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (did, collection, rkey) DO UPDATE SET cid = excluded.cid, rev = excluded.rev, "
        "indexed_at = excluded.indexed_at",
        [(did, c, k, bytes(cid), rev, now) for c, k, cid in records],
    )


def delete_records(conn: sqlite3.Connection, did: str, paths: Iterable[tuple[str, str]]) -> None:
    conn.executemany(
        "DELETE FROM record WHERE did = ? AND collection = ? AND rkey = ?", [(did, c, k) for c, k in paths]
    )


def record_cids_in_use(conn: sqlite3.Connection, did: str, cids: Iterable[CID]) -> set[CID]:
    """Those of ``cids`` that some record of the account still points to: one indexed ``IN`` query per
    :data:`_IN_CHUNK` CIDs (a commit that drops many blocks asks once, not once per block)."""
    wanted = {bytes(c): c for c in cids}
    keys = list(wanted)
    used: set[CID] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT DISTINCT cid FROM record WHERE did = ? AND cid IN ({marks})", (did, *chunk)
        ).fetchall()
        used.update(wanted[row[0]] for row in rows)
    return used


def repos_with_collection(
    conn: sqlite3.Connection, collection: str, cursor: str | None, limit: int
) -> list[str]:
    """DIDs holding at least one record of ``collection``, in DID order after ``cursor``."""
    rows = conn.execute(
        "SELECT DISTINCT did FROM record WHERE collection = ? AND did > ? ORDER BY did LIMIT ?",
        (collection, cursor or "", limit),
    ).fetchall()
    return [r[0] for r in rows]
