"""App passwords: named, revocable passwords (``xxxx-xxxx-xxxx-xxxx``) with a reduced session scope."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["AppPassword", "delete_app_password", "insert_app_password", "list_app_passwords"]


@dataclass(frozen=True, slots=True)
class AppPassword:
    did: str
    name: str
    password_scrypt: str
    created_at: str
    privileged: bool


def insert_app_password(
    conn: sqlite3.Connection, did: str, name: str, password_scrypt: str, created_at: str, privileged: bool
) -> bool:
    """False if the account already has an app password with this name."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO app_password (did, name, password_scrypt, created_at, privileged) "
        "VALUES (?, ?, ?, ?, ?)",
        (did, name, password_scrypt, created_at, int(privileged)),
    )
    return cur.rowcount > 0


def list_app_passwords(conn: sqlite3.Connection, did: str) -> list[AppPassword]:
    rows = conn.execute(
        "SELECT did, name, password_scrypt, created_at, privileged FROM app_password WHERE did = ? "
        "ORDER BY created_at DESC",
        (did,),
    )
    return [AppPassword(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def delete_app_password(conn: sqlite3.Connection, did: str, name: str) -> bool:
    return conn.execute("DELETE FROM app_password WHERE did = ? AND name = ?", (did, name)).rowcount > 0
