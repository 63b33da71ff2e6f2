"""Per-DID state: hosting host, local and upstream status, last accepted commit, records per collection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from atstack.relay.store.events import insert_rows

__all__ = [
    "AccountRow",
    "apply_collection_deltas",
    "collection_counts",
    "get_account",
    "list_accounts_after",
    "list_by_collection",
    "replace_collections",
    "upsert_accounts",
]

_COLUMNS = "did, host_id, status, upstream_status, rev, commit_cid, data_cid, desynchronized, created_at"


@dataclass(slots=True)
class AccountRow:
    did: str
    host_id: int | None
    status: str | None  # local moderation: None or "takendown"
    upstream_status: str | None  # None = active at its host; else the status of its last #account
    rev: str | None
    commit_cid: bytes | None
    data_cid: bytes | None
    desynchronized: int
    created_at: str


def get_account(conn: sqlite3.Connection, did: str) -> AccountRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM account WHERE did = ?", (did,)).fetchone()
    return AccountRow(*row) if row is not None else None


def get_accounts(conn: sqlite3.Connection, dids: list[str]) -> list[AccountRow]:
    out: list[AccountRow] = []
    for start in range(0, len(dids), 500):
        chunk = dids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        out.extend(
            AccountRow(*r)
            for r in conn.execute(f"SELECT {_COLUMNS} FROM account WHERE did IN ({marks})", chunk)
        )
    return out


def upsert_accounts(conn: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    """Rows in column order (see ``_COLUMNS``); the whole row is replaced."""
    insert_rows(
        conn,
        f"INSERT INTO account ({_COLUMNS})",
        9,
        list(rows),
        "ON CONFLICT (did) DO UPDATE SET host_id = excluded.host_id, status = excluded.status,"
        " upstream_status = excluded.upstream_status, rev = excluded.rev, commit_cid = excluded.commit_cid,"
        " data_cid = excluded.data_cid, desynchronized = excluded.desynchronized",
    )


def list_accounts_after(conn: sqlite3.Connection, cursor: str | None, limit: int) -> list[AccountRow]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM account WHERE did > ? ORDER BY did LIMIT ?", (cursor or "", limit)
    ).fetchall()
    return [AccountRow(*r) for r in rows]


def apply_collection_deltas(conn: sqlite3.Connection, deltas: dict[tuple[str, str], int]) -> None:
    """Add ``(collection, did) → delta`` record counts; rows that reach zero (or below) are removed."""
    if not deltas:
        return
    insert_rows(
        conn,
        "INSERT INTO repo_collection (collection, did, records)",
        3,
        [(c, d, n) for (c, d), n in deltas.items() if n],
        "ON CONFLICT (collection, did) DO UPDATE SET records = records + excluded.records",
    )
    negative = [(c, d) for (c, d), n in deltas.items() if n < 0]
    if negative:
        conn.executemany(
            "DELETE FROM repo_collection WHERE collection = ? AND did = ? AND records <= 0", negative
        )


def replace_collections(conn: sqlite3.Connection, did: str, counts: dict[str, int]) -> None:
    """After a resync: the repo's exact record counts per collection."""
    conn.execute("DELETE FROM repo_collection WHERE did = ?", (did,))
    conn.executemany(
        "INSERT INTO repo_collection (collection, did, records) VALUES (?, ?, ?)",
        [(c, did, n) for c, n in counts.items() if n > 0],
    )


def collection_counts(conn: sqlite3.Connection, collection: str, dids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(dids), 500):
        chunk = dids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT did, records FROM repo_collection WHERE collection = ? AND did IN ({marks})"
        out.update(conn.execute(sql, [collection, *chunk]).fetchall())
    return out


def list_by_collection(
    conn: sqlite3.Connection, collection: str, cursor: str | None, limit: int
) -> list[str]:
    """DIDs with records in ``collection`` whose accounts are active here, in DID order after ``cursor``."""
    rows = conn.execute(
        "SELECT rc.did FROM repo_collection rc JOIN account a ON a.did = rc.did"
        " WHERE rc.collection = ? AND rc.did > ? AND a.status IS NULL AND a.upstream_status IS NULL"
        " ORDER BY rc.did LIMIT ?",
        (collection, cursor or "", limit),
    ).fetchall()
    return [r[0] for r in rows]
