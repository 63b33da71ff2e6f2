"""``com.atproto.server`` sessions and app passwords: createSession, refreshSession, getSession,
deleteSession, createAppPassword, listAppPasswords, revokeAppPassword.

Spec: atproto.com/specs/xrpc ("Authentication"), checklist §8; behaviour anchored on the reference PDS.
A login identifier is a handle, a DID or an email address; the password is the account password or one of
its app passwords (the session then carries scope ``com.atproto.appPass[Privileged]``). Refresh tokens are
stored and rotated: a refreshed token stays usable for a two-hour grace period and always yields the same
successor, so a client retrying a refresh whose answer was lost is not logged out. ``createSession`` is
rate-limited per identifier (30 / 5 min, 300 / day).
"""

from __future__ import annotations

import asyncio
import hmac
import sqlite3
from typing import TYPE_CHECKING, Any

from atstack.pds.auth import (
    ACCESS_FULL,
    SCOPE_ACCESS,
    SCOPE_APP_PASS,
    SCOPE_APP_PASS_PRIVILEGED,
    Credentials,
)
from atstack.pds.handlers._util import auth_did
from atstack.pds.passwords import (
    OLD_PASSWORD_MAX_LENGTH,
    generate_app_password,
    hash_app_password,
    verify_password,
)
from atstack.pds.store import accounts, app_passwords, iso_time, sessions
from atstack.xrpc.errors import AuthRequiredError, InvalidRequestError
from atstack.xrpc.ratelimit import create_session_limits
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["register"]

REFRESH_GRACE = 2 * 3600
_ACCOUNT_NOT_FOUND = "Invalid identifier or password"


def _session_body(account: accounts.Account) -> dict[str, Any]:
    body: dict[str, Any] = {"did": account.did, "handle": account.handle or "handle.invalid"}
    if account.email:
        body["email"] = account.email
        body["emailConfirmed"] = account.email_confirmed_at is not None
    body["active"] = account.status is None
    if account.status is not None:
        body["status"] = account.status
    return body


def _check_app_password(
    did: str, password: str, stored: list[app_passwords.AppPassword]
) -> app_passwords.AppPassword | None:
    """The app password ``password`` is, if any (hashing once: its salt is per account, not per password).

    scrypt: call it in a worker thread (``asyncio.to_thread``), as every password hash is.
    """
    if not stored:
        return None
    hashed = hash_app_password(did, password)
    return next((ap for ap in stored if hmac.compare_digest(ap.password_scrypt, hashed)), None)


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth

    def identifier_key(req: XRPCRequest) -> str | None:
        ident = req.body.get("identifier") if isinstance(req.body, dict) else None
        return ident.lower() if isinstance(ident, str) else None

    session_limits = create_session_limits(identifier_key) if ctx.config.rate_limits else []

    async def did_doc(did: str) -> dict[str, Any] | None:
        return await ctx.accounts.resolve_did_doc(did, refresh=False)

    @router.procedure("com.atproto.server.createSession", rate_limits=session_limits)
    async def create_session(req: XRPCRequest) -> dict[str, Any]:
        body = req.body
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            raise InvalidRequestError("identifier and password are required")
        if len(password) > OLD_PASSWORD_MAX_LENGTH:
            raise AuthRequiredError("Password too long. Consider resetting your password.")
        ident = identifier.strip()
        if not ident.startswith("did:"):
            ident = ident.lower()

        def lookup(
            conn: sqlite3.Connection,
        ) -> tuple[accounts.Account | None, list[app_passwords.AppPassword]]:
            account = accounts.get_by_identifier(conn, ident)
            if account is None:
                return None, []
            return account, app_passwords.list_app_passwords(conn, account.did)

        account, app_pws = await ctx.db.read(lookup)
        if account is None:
            raise AuthRequiredError(_ACCOUNT_NOT_FOUND)
        # scrypt (tens of ms each) runs in worker threads, at most MAX_CONCURRENT_HASHES at once
        scope: str | None = None
        app_name: str | None = None
        if account.password_scrypt and await asyncio.to_thread(
            verify_password, password, account.password_scrypt
        ):
            scope = SCOPE_ACCESS
        else:
            app_pw = await asyncio.to_thread(_check_app_password, account.did, password, app_pws)
            if app_pw is not None:
                scope = SCOPE_APP_PASS_PRIVILEGED if app_pw.privileged else SCOPE_APP_PASS
                app_name = app_pw.name
        if scope is None:
            raise AuthRequiredError(_ACCOUNT_NOT_FOUND)
        if account.status == "takendown":
            raise AuthRequiredError("Account has been taken down", "AccountTakedown")
        tokens = auth.create_tokens(account.did, scope)
        await ctx.db.execute_write(
            lambda conn: sessions.insert_refresh_token(
                conn, tokens.refresh_id, account.did, tokens.refresh_expires_at, app_name
            )
        )
        out = _session_body(account)
        doc = await did_doc(account.did)
        if doc is not None:
            out["didDoc"] = doc
        out["accessJwt"] = tokens.access_jwt
        out["refreshJwt"] = tokens.refresh_jwt
        return out

    @router.procedure("com.atproto.server.refreshSession", auth=auth.refresh())
    async def refresh_session(req: XRPCRequest) -> dict[str, Any]:
        creds: Credentials = req.auth
        did, token_id = creds.require_did(), creds.token_id
        assert token_id is not None
        now = auth.now()

        def rotate(conn: sqlite3.Connection) -> tuple[accounts.Account, Any]:
            account = accounts.get_account(conn, did)
            if account is None:
                raise InvalidRequestError("Could not find user info for account", "AccountNotFound")
            if account.status == "takendown":
                raise AuthRequiredError("Account has been taken down", "AccountTakedown")
            row = sessions.get_refresh_token(conn, token_id)
            if row is None or row.did != did or row.expires_at <= now:
                raise InvalidRequestError("Token has been revoked", "ExpiredToken")
            scope = SCOPE_ACCESS
            if row.app_password_name is not None:
                stored = {a.name: a for a in app_passwords.list_app_passwords(conn, did)}
                ap = stored.get(row.app_password_name)
                if ap is None:
                    raise InvalidRequestError("Token has been revoked", "ExpiredToken")
                scope = SCOPE_APP_PASS_PRIVILEGED if ap.privileged else SCOPE_APP_PASS
            tokens = auth.create_tokens(did, scope, jti=row.next_id)
            if not sessions.rotate_refresh_token(conn, token_id, tokens.refresh_id, now + REFRESH_GRACE):
                raise InvalidRequestError("Token has been revoked", "ExpiredToken")
            sessions.insert_refresh_token(
                conn, tokens.refresh_id, did, tokens.refresh_expires_at, row.app_password_name
            )
            sessions.delete_expired_refresh_tokens(conn, did, now)
            return account, tokens

        account, tokens = await ctx.db.execute_write(rotate)
        out = _session_body(account)
        doc = await did_doc(did)
        if doc is not None:
            out["didDoc"] = doc
        out["accessJwt"] = tokens.access_jwt
        out["refreshJwt"] = tokens.refresh_jwt
        return out

    @router.query("com.atproto.server.getSession", auth=auth.access_standard)
    async def get_session(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError(f"Could not find user info for account: {did}")
        out = _session_body(account)
        doc = await did_doc(did)
        if doc is not None:
            out["didDoc"] = doc
        return out

    @router.procedure("com.atproto.server.deleteSession", auth=auth.refresh(allow_expired=True))
    async def delete_session(req: XRPCRequest) -> None:
        token_id = req.auth.token_id
        await ctx.db.execute_write(lambda conn: sessions.revoke_refresh_token(conn, token_id))

    # --- app passwords --------------------------------------------------------------------------------

    @router.procedure(
        "com.atproto.server.createAppPassword", auth=auth.access(ACCESS_FULL, check_takedown=True)
    )
    async def create_app_password(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        name = req.body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequestError("name is required")
        privileged = bool(req.body.get("privileged", False))
        password = generate_app_password()
        hashed = await asyncio.to_thread(hash_app_password, did, password)
        created_at = iso_time(ctx.clock())
        inserted = await ctx.db.execute_write(
            lambda conn: app_passwords.insert_app_password(conn, did, name, hashed, created_at, privileged)
        )
        if not inserted:
            raise InvalidRequestError("could not create app-specific password")
        return {"name": name, "password": password, "createdAt": created_at, "privileged": privileged}

    @router.query("com.atproto.server.listAppPasswords", auth=auth.access_standard)
    async def list_app_passwords(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        stored = await ctx.db.read(lambda conn: app_passwords.list_app_passwords(conn, did))
        return {
            "passwords": [
                {"name": a.name, "createdAt": a.created_at, "privileged": a.privileged} for a in stored
            ]
        }

    @router.procedure("com.atproto.server.revokeAppPassword", auth=auth.access_standard)
    async def revoke_app_password(req: XRPCRequest) -> None:
        did = auth_did(req)
        name = req.body.get("name")
        if not isinstance(name, str):
            raise InvalidRequestError("name is required")

        def revoke(conn: sqlite3.Connection) -> None:
            app_passwords.delete_app_password(conn, did, name)
            sessions.revoke_app_password_tokens(conn, did, name)

        await ctx.db.execute_write(revoke)
