"""``com.atproto.server`` email flows: requestEmailConfirmation, confirmEmail, requestEmailUpdate, updateEmail,
requestPasswordReset, resetPassword. Messages go to the mail outbox (:mod:`atstack.pds.store.mail`); the
PDS sends no mail itself.

Behaviour anchored on the reference PDS (tokens: :mod:`._email_tokens`, 15 minutes, single use):

* ``requestEmailConfirmation`` / ``confirmEmail {email, token}`` (access token, not taken down): the email
  must be the account's (400 ``InvalidEmail``); confirming stamps ``emailConfirmedAt``;
* ``requestEmailUpdate`` (full access) answers ``{tokenRequired}``: a token is mailed to the current
  address only when it is confirmed; ``updateEmail {email, token?}`` then needs it (400 ``TokenRequired``),
  clears the confirmation and every outstanding email token; an address another account uses is refused;
* ``requestPasswordReset {email}`` (no auth) mails a token to the account with that address (400 when
  there is none); ``resetPassword {token, password}`` sets the password and ends every session.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import TYPE_CHECKING, Any

from atstack.pds.auth import ACCESS_FULL
from atstack.pds.handlers._email_tokens import (
    CONFIRM_EMAIL,
    RESET_PASSWORD,
    UPDATE_EMAIL,
    check_email_token,
    check_token_age,
    issue_email_token,
)
from atstack.pds.handlers._util import auth_did
from atstack.pds.passwords import NEW_PASSWORD_MAX_LENGTH, hash_password
from atstack.pds.store import account_admin, accounts, iso_time, sessions
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.ratelimit import RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["register"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONFIRM_MAIL = (
    "Confirm the email address of {handle} with this code: {token}\n"
    "It expires in 15 minutes. If you did not ask for it, you can ignore this message.\n"
)
_UPDATE_MAIL = (
    "A request was made to change the email address of {handle}.\n"
    "If this was you, use this code: {token}\nIt expires in 15 minutes.\n"
)
_RESET_MAIL = (
    "A request was made to reset the password of {handle}.\n"
    "If this was you, use this code: {token}\nIt expires in 15 minutes.\n"
)


def _did_limits(name: str, per_hour: int, per_day: int) -> list[RouteRateLimit]:
    def key(req: XRPCRequest) -> str | None:
        return getattr(req.auth, "did", None)

    return [
        RouteRateLimit(RateLimiter(f"{name}-hour", per_hour, 3600), key),
        RouteRateLimit(RateLimiter(f"{name}-day", per_day, 86400), key),
    ]


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth
    limits = ctx.config.rate_limits
    email_auth = auth.access(check_takedown=True)
    email_update_auth = auth.access(ACCESS_FULL, check_takedown=True)

    async def account_of(did: str) -> accounts.Account:
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("account not found")
        return account

    # --- confirmation ---------------------------------------------------------------------------------

    @router.procedure(
        "com.atproto.server.requestEmailConfirmation",
        auth=email_auth,
        input=None,
        rate_limits=_did_limits("email-confirm", 5, 15) if limits else [],
    )
    async def request_email_confirmation(req: XRPCRequest) -> None:
        account = await account_of(auth_did(req))
        await issue_email_token(ctx, account, CONFIRM_EMAIL, "Confirm your email address", _CONFIRM_MAIL)

    @router.procedure("com.atproto.server.confirmEmail", auth=email_auth)
    async def confirm_email(req: XRPCRequest) -> None:
        did = auth_did(req)
        email, token = req.body.get("email"), req.body.get("token")
        if not isinstance(email, str) or not isinstance(token, str):
            raise InvalidRequestError("email and token are required")
        now = ctx.clock()

        def write(conn: sqlite3.Connection) -> None:
            account = accounts.get_account(conn, did)
            if account is None:
                raise InvalidRequestError("user not found", "AccountNotFound")
            if not account.email or account.email.lower() != email.lower():
                raise InvalidRequestError("invalid email", "InvalidEmail")
            check_email_token(conn, did, CONFIRM_EMAIL, token, now)
            sessions.delete_email_token(conn, did, CONFIRM_EMAIL)
            account_admin.set_email_confirmed(conn, did, iso_time(now))

        await ctx.db.execute_write(write)

    # --- address change -------------------------------------------------------------------------------

    @router.procedure(
        "com.atproto.server.requestEmailUpdate",
        auth=email_update_auth,
        input=None,
        rate_limits=_did_limits("email-update", 5, 15) if limits else [],
    )
    async def request_email_update(req: XRPCRequest) -> dict[str, Any]:
        account = await account_of(auth_did(req))
        if not account.email:
            raise InvalidRequestError("account does not have an email address")
        required = account.email_confirmed_at is not None
        if required:
            await issue_email_token(ctx, account, UPDATE_EMAIL, "Email update requested", _UPDATE_MAIL)
        return {"tokenRequired": required}

    @router.procedure("com.atproto.server.updateEmail", auth=email_update_auth)
    async def update_email(req: XRPCRequest) -> None:
        did = auth_did(req)
        email, token = req.body.get("email"), req.body.get("token")
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise InvalidRequestError("This email address is not supported, please use a different email.")
        if token is not None and not isinstance(token, str):
            raise InvalidRequestError("token must be a string")
        now = ctx.clock()

        def write(conn: sqlite3.Connection) -> None:
            account = accounts.get_account(conn, did)
            if account is None:
                raise InvalidRequestError("account not found")
            if account.email_confirmed_at is not None and not token:
                raise InvalidRequestError("confirmation token required", "TokenRequired")
            if token:
                check_email_token(conn, did, UPDATE_EMAIL, token, now)
            other = accounts.get_by_email(conn, email)
            if other is not None and other.did != did:
                raise InvalidRequestError(
                    "This email address is already in use, please use a different email."
                )
            accounts.set_email(conn, did, email, None)
            account_admin.delete_email_tokens(conn, did)

        await ctx.db.execute_write(write)

    # --- password reset -------------------------------------------------------------------------------

    reset_request_limits = (
        [
            RouteRateLimit(RateLimiter("password-reset-request-hour", 15, 3600)),
            RouteRateLimit(RateLimiter("password-reset-request-day", 50, 86400)),
        ]
        if limits
        else []
    )

    @router.procedure("com.atproto.server.requestPasswordReset", rate_limits=reset_request_limits)
    async def request_password_reset(req: XRPCRequest) -> None:
        email = req.body.get("email")
        if not isinstance(email, str) or not email:
            raise InvalidRequestError("email is required")
        account = await ctx.db.read(lambda conn: accounts.get_by_email(conn, email))
        if account is None or not account.email:
            raise InvalidRequestError("account does not have an email address")
        await issue_email_token(ctx, account, RESET_PASSWORD, "Password Reset Requested", _RESET_MAIL)

    reset_limits = [RouteRateLimit(RateLimiter("password-reset", 50, 300))] if limits else []

    @router.procedure("com.atproto.server.resetPassword", rate_limits=reset_limits)
    async def reset_password(req: XRPCRequest) -> None:
        token, password = req.body.get("token"), req.body.get("password")
        if not isinstance(token, str) or not isinstance(password, str):
            raise InvalidRequestError("token and password are required")
        if not password or len(password) > NEW_PASSWORD_MAX_LENGTH:
            raise InvalidRequestError("Invalid password length.")
        found = await ctx.db.read(
            lambda conn: account_admin.find_email_token(conn, RESET_PASSWORD, token.strip())
        )
        if found is None:
            raise InvalidRequestError("Token is invalid", "InvalidToken")
        did, requested_at = found
        check_token_age(requested_at, ctx.clock())
        hashed = await asyncio.to_thread(hash_password, password)

        def write(conn: sqlite3.Connection) -> None:
            # the token is re-checked in the write: a concurrent reset may have used it already
            if account_admin.find_email_token(conn, RESET_PASSWORD, token.strip()) != found:
                raise InvalidRequestError("Token is invalid", "InvalidToken")
            accounts.set_password(conn, did, hashed)
            sessions.delete_email_token(conn, did, RESET_PASSWORD)
            sessions.revoke_refresh_tokens_for(conn, did)

        await ctx.db.execute_write(write)
