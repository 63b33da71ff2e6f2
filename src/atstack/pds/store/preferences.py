"""Account preferences (``app.bsky.actor.getPreferences``/``putPreferences``): JSON values by name."""

from __future__ import annotations

import sqlite3

__all__ = ["get_preferences", "put_preferences"]


def get_preferences(conn: sqlite3.Connection, did: str, prefix: str = "") -> list[tuple[str, str]]:
    """``(name, value_json)`` whose name starts with ``prefix``, in name order."""
    rows = conn.execute(
        "SELECT name, value_json FROM account_pref WHERE did = ? AND substr(name, 1, ?) = ? ORDER BY name",
        (did, len(prefix), prefix),
    )
    return [(r[0], r[1]) for r in rows]


def put_preferences(conn: sqlite3.Connection, did: str, prefix: str, prefs: list[tuple[str, str]]) -> None:
    """Replace every preference under ``prefix`` with ``prefs``."""
    conn.execute(
        "DELETE FROM account_pref WHERE did = ? AND substr(name, 1, ?) = ?", (did, len(prefix), prefix)
    )
    conn.executemany(
        "INSERT OR REPLACE INTO account_pref (did, name, value_json) VALUES (?, ?, ?)",
        [(did, name, value) for name, value in prefs],
    )
