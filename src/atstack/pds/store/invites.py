"""Invite codes: created by the admin (or for an account), each with a number of uses."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

__all__ = [
    "InviteCode",
    "InviteUse",
    "account_invite_codes",
    "disable_account_invites",
    "disable_codes",
    "get_invite_code",
    "insert_invite_codes",
    "record_invite_use",
]


@dataclass(frozen=True, slots=True)
class InviteUse:
    used_by: str
    used_at: str


@dataclass(frozen=True, slots=True)
class InviteCode:
    code: str
    available: int
    disabled: bool
    for_account: str
    created_by: str
    created_at: str
    uses: list[InviteUse] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.available - len(self.uses)


def insert_invite_codes(
    conn: sqlite3.Connection, codes: list[str], uses: int, for_account: str, created_by: str, created_at: str
) -> None:
    conn.executemany(
        "INSERT INTO invite_code (code, available_uses, disabled, for_account, created_by, created_at) "
        "VALUES (?, ?, 0, ?, ?, ?)",
        [(code, uses, for_account, created_by, created_at) for code in codes],
    )


def _uses(conn: sqlite3.Connection, code: str) -> list[InviteUse]:
    rows = conn.execute(
        "SELECT used_by, used_at FROM invite_code_use WHERE code = ? ORDER BY used_at", (code,)
    )
    return [InviteUse(r[0], r[1]) for r in rows]


def get_invite_code(conn: sqlite3.Connection, code: str) -> InviteCode | None:
    row = conn.execute(
        "SELECT code, available_uses, disabled, for_account, created_by, created_at FROM invite_code "
        "WHERE code = ?",
        (code,),
    ).fetchone()
    if row is None:
        return None
    return InviteCode(row[0], row[1], bool(row[2]), row[3], row[4], row[5], _uses(conn, row[0]))


def account_invite_codes(conn: sqlite3.Connection, did: str) -> list[InviteCode]:
    rows = conn.execute(
        "SELECT code, available_uses, disabled, for_account, created_by, created_at FROM invite_code "
        "WHERE for_account = ? ORDER BY created_at, code",
        (did,),
    ).fetchall()
    return [InviteCode(r[0], r[1], bool(r[2]), r[3], r[4], r[5], _uses(conn, r[0])) for r in rows]


def record_invite_use(conn: sqlite3.Connection, code: str, used_by: str, used_at: str) -> None:
    conn.execute(
        "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)", (code, used_by, used_at)
    )


def disable_codes(conn: sqlite3.Connection, codes: list[str]) -> None:
    conn.executemany("UPDATE invite_code SET disabled = 1 WHERE code = ?", [(c,) for c in codes])


def disable_account_invites(conn: sqlite3.Connection, did: str, disabled: bool) -> None:
    conn.execute("UPDATE account SET invites_disabled = ? WHERE did = ?", (int(disabled), did))
