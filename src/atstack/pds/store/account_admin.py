"""Queries of the admin and email endpoints: invite listings, account search, email tokens, record takedowns.

The tables are the ones :mod:`.accounts`, :mod:`.invites`, :mod:`.sessions` and :mod:`.repo` own; this module
adds the reads and updates only ``com.atproto.admin.*``, the email flows and ``resetPassword`` use:

* invite codes listed newest first (``recent``) or most used first (``usage``), paged by a keyset cursor
  ``<sort value>::<code>`` (the code breaks ties, so a page boundary never skips or repeats a code);
* accounts searched by a substring of their email address, paged by DID;
* an email token found by its value (password reset names no account); tokens are stored upper-case;
* a record's ``takedown_ref`` (``updateSubjectStatus`` with a ``strongRef``).
"""

from __future__ import annotations

import sqlite3

from atstack.core.cid import CID
from atstack.pds.store.accounts import Account, get_account
from atstack.pds.store.invites import InviteCode, get_invite_code

__all__ = [
    "InviteSort",
    "delete_email_tokens",
    "disable_account_codes",
    "find_email_token",
    "get_record_takedown",
    "invited_by",
    "list_invite_codes",
    "search_accounts",
    "set_email_confirmed",
    "set_record_takedown",
]

InviteSort = str  # "recent" | "usage"


def invited_by(conn: sqlite3.Connection, did: str) -> InviteCode | None:
    """The invite code the account signed up with, if any."""
    row = conn.execute(
        "SELECT code FROM invite_code_use WHERE used_by = ? ORDER BY used_at LIMIT 1", (did,)
    ).fetchone()
    return get_invite_code(conn, row[0]) if row is not None else None


def list_invite_codes(
    conn: sqlite3.Connection, sort: InviteSort, cursor: tuple[str, str] | None, limit: int
) -> list[tuple[InviteCode, str]]:
    """Codes in ``sort`` order after ``cursor`` (``(sort value, code)``), each with its cursor value.

    Raises ``ValueError`` for an unknown sort or a cursor that does not fit it.
    """
    if sort == "usage":
        key = "(SELECT count(*) FROM invite_code_use u WHERE u.code = c.code)"
    elif sort == "recent":
        key = "c.created_at"
    else:
        raise ValueError(f"unknown sort method: {sort}")
    where = ""
    params: list[object] = []
    if cursor is not None:
        value: object = int(cursor[0]) if sort == "usage" else cursor[0]
        where = f"WHERE ({key} < ? OR ({key} = ? AND c.code < ?))"
        params = [value, value, cursor[1]]
    rows = conn.execute(
        f"SELECT c.code, {key} FROM invite_code c {where} ORDER BY {key} DESC, c.code DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    out: list[tuple[InviteCode, str]] = []
    for code, sort_value in rows:
        found = get_invite_code(conn, code)
        if found is not None:
            out.append((found, str(sort_value)))
    return out


def disable_account_codes(conn: sqlite3.Connection, dids: list[str]) -> int:
    """Disable every invite code created for the given accounts."""
    return sum(
        conn.execute("UPDATE invite_code SET disabled = 1 WHERE for_account = ?", (did,)).rowcount
        for did in dids
    )


def search_accounts(
    conn: sqlite3.Connection, email: str | None, cursor: str | None, limit: int
) -> list[Account]:
    """Accounts in DID order after ``cursor`` whose email contains ``email`` (case-insensitive)."""
    if email:
        pattern = "%" + email.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = conn.execute(
            "SELECT did FROM account WHERE did > ? AND email LIKE ? ESCAPE '\\' ORDER BY did LIMIT ?",
            (cursor or "", pattern, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT did FROM account WHERE did > ? ORDER BY did LIMIT ?", (cursor or "", limit)
        ).fetchall()
    found = [get_account(conn, r[0]) for r in rows]
    return [a for a in found if a is not None]


def delete_email_tokens(conn: sqlite3.Connection, did: str) -> int:
    """Every outstanding email token of the account (its address changed)."""
    return conn.execute("DELETE FROM email_token WHERE did = ?", (did,)).rowcount


def find_email_token(conn: sqlite3.Connection, purpose: str, token: str) -> tuple[str, str] | None:
    """``(did, requested_at)`` of the token with this value and purpose, or None."""
    row = conn.execute(
        "SELECT did, requested_at FROM email_token WHERE purpose = ? AND token = ?", (purpose, token.upper())
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


def set_email_confirmed(conn: sqlite3.Connection, did: str, confirmed_at: str) -> bool:
    cur = conn.execute("UPDATE account SET email_confirmed_at = ? WHERE did = ?", (confirmed_at, did))
    return cur.rowcount > 0


def get_record_takedown(
    conn: sqlite3.Connection, did: str, collection: str, rkey: str
) -> tuple[CID, str | None] | None:
    """``(record cid, takedown_ref)`` of a current record, or None."""
    row = conn.execute(
        "SELECT cid, takedown_ref FROM record WHERE did = ? AND collection = ? AND rkey = ?",
        (did, collection, rkey),
    ).fetchone()
    return (CID(row[0]), row[1]) if row is not None else None


def set_record_takedown(
    conn: sqlite3.Connection, did: str, collection: str, rkey: str, takedown_ref: str | None
) -> bool:
    cur = conn.execute(
        "UPDATE record SET takedown_ref = ? WHERE did = ? AND collection = ? AND rkey = ?",
        (takedown_ref, did, collection, rkey),
    )
    return cur.rowcount > 0
