"""Upstream hosts (PDSes or relays we subscribe to): status, limits and the persisted cursor."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "HostRow",
    "account_counts",
    "get_host",
    "insert_host",
    "list_hosts",
    "list_hosts_after",
    "set_limits",
    "set_status",
]

_COLUMNS = "id, hostname, status, last_seq, account_limit, events_per_second, created_at"


@dataclass(slots=True)
class HostRow:
    id: int
    hostname: str
    status: str
    last_seq: int | None
    account_limit: int | None
    events_per_second: float | None
    created_at: str


def _row(row: tuple | None) -> HostRow | None:
    return HostRow(*row) if row is not None else None


def get_host(conn: sqlite3.Connection, hostname: str) -> HostRow | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM host WHERE hostname = ?", (hostname,)).fetchone())


def insert_host(conn: sqlite3.Connection, hostname: str, status: str, now: str) -> HostRow:
    conn.execute(
        "INSERT INTO host (hostname, status, created_at, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (hostname) DO NOTHING",
        (hostname, status, now, now),
    )
    found = get_host(conn, hostname)
    assert found is not None
    return found


def list_hosts(conn: sqlite3.Connection) -> list[HostRow]:
    return [HostRow(*r) for r in conn.execute(f"SELECT {_COLUMNS} FROM host ORDER BY id")]


def list_hosts_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[HostRow]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM host WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
    ).fetchall()
    return [HostRow(*r) for r in rows]


def set_status(conn: sqlite3.Connection, host_id: int, status: str, now: str) -> None:
    conn.execute("UPDATE host SET status = ?, updated_at = ? WHERE id = ?", (status, now, host_id))


def set_limits(
    conn: sqlite3.Connection,
    host_id: int,
    account_limit: int | None,
    events_per_second: float | None,
    now: str,
) -> None:
    conn.execute(
        "UPDATE host SET account_limit = ?, events_per_second = ?, updated_at = ? WHERE id = ?",
        (account_limit, events_per_second, now, host_id),
    )


def set_cursors(conn: sqlite3.Connection, cursors: list[tuple[int, int]]) -> None:
    """``(host_id, last_seq)`` pairs: the upstream seq up to which every event has been handled."""
    conn.executemany("UPDATE host SET last_seq = ? WHERE id = ?", [(seq, hid) for hid, seq in cursors])


def reset_cursor(conn: sqlite3.Connection, host_id: int) -> None:
    conn.execute("UPDATE host SET last_seq = NULL WHERE id = ?", (host_id,))


def account_counts(conn: sqlite3.Connection) -> dict[int, int]:
    """Accounts per host id (loaded once at start; kept up to date in memory afterwards)."""
    rows = conn.execute(
        "SELECT host_id, count(*) FROM account WHERE host_id IS NOT NULL GROUP BY host_id"
    ).fetchall()
    return {hid: n for hid, n in rows}
