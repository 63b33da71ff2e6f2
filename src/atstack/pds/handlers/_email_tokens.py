"""Single-use email tokens: issued into the mail outbox, checked by the endpoint that consumes them.

Behaviour anchored on the reference PDS's email tokens: one token per account and purpose (a new request
replaces the old one), ``xxxxx-xxxxx`` in upper-case base32, valid for 15 minutes; a wrong token is 400
``InvalidToken``, an old one 400 ``ExpiredToken``. The token and the message carrying it are written in one
transaction (:mod:`atstack.pds.store.mail`), so a token is never issued without its message.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from atstack.pds.handlers.server import random_token
from atstack.pds.store import iso_time, mail, sessions
from atstack.pds.store.accounts import Account
from atstack.xrpc.errors import InvalidRequestError

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = [
    "CONFIRM_EMAIL",
    "EMAIL_TOKEN_TTL",
    "PLC_OPERATION",
    "RESET_PASSWORD",
    "UPDATE_EMAIL",
    "check_email_token",
    "check_token_age",
    "issue_email_token",
]

EMAIL_TOKEN_TTL = 15 * 60
CONFIRM_EMAIL = "confirm_email"
UPDATE_EMAIL = "update_email"
RESET_PASSWORD = "reset_password"
PLC_OPERATION = "plc_operation"


def _seconds(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("-inf")


def check_token_age(requested_at: str, now: float) -> None:
    if now - _seconds(requested_at) > EMAIL_TOKEN_TTL:
        raise InvalidRequestError("Token is expired", "ExpiredToken")


def check_email_token(conn: sqlite3.Connection, did: str, purpose: str, token: str, now: float) -> None:
    """Raise ``InvalidToken``/``ExpiredToken`` unless ``token`` is the account's current one for ``purpose``."""
    stored = sessions.get_email_token(conn, did, purpose)
    if stored is None or stored[0] != token.strip().upper():
        raise InvalidRequestError("Token is invalid", "InvalidToken")
    check_token_age(stored[1], now)


async def issue_email_token(
    ctx: PdsContext, account: Account, purpose: str, subject: str, text: str, *, recipient: str | None = None
) -> str:
    """Store a new token for ``purpose`` and queue ``text`` (``{token}`` filled in) to the account's email."""
    to = recipient or account.email
    if not to:
        raise InvalidRequestError("account does not have an email address")
    token = random_token().upper()
    now = iso_time(ctx.clock())
    body = text.format(token=token, handle=account.handle or account.did, did=account.did)

    def write(conn: sqlite3.Connection) -> None:
        sessions.put_email_token(conn, account.did, purpose, token, now)
        mail.enqueue_mail(conn, account.did, to, subject, body, now)

    await ctx.db.execute_write(write)
    return token
