"""``com.atproto.server``: describeServer, createAccount, invites, account status, deactivation, deletion,
service auth. (Sessions and app passwords are in :mod:`.session`.)

Spec: atproto.com/specs/account, /xrpc ("Inter-Service Authentication"), checklist §6, §8, §10; behaviour
anchored on the reference PDS. Account creation and status changes are in
:class:`atstack.pds.accounts.AccountManager`; this module checks inputs and shapes outputs.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
from typing import TYPE_CHECKING, Any

from atstack.core.did_doc import parse_did_doc
from atstack.core.syntax import is_valid_did, is_valid_nsid
from atstack.identity import IdentityError
from atstack.pds.accounts import NewAccount
from atstack.pds.auth import ACCESS_FULL, ACCESS_PRIVILEGED, Credentials
from atstack.pds.handlers._util import auth_did
from atstack.pds.jwt import create_service_jwt
from atstack.pds.passwords import (
    NEW_PASSWORD_MAX_LENGTH,
    OLD_PASSWORD_MAX_LENGTH,
    hash_password,
    verify_password,
)
from atstack.pds.service_auth import verify_service_auth
from atstack.pds.store import accounts, invites, iso_time, mail, sessions
from atstack.pds.store import repo as repo_store
from atstack.xrpc.errors import AuthRequiredError, InvalidRequestError
from atstack.xrpc.ratelimit import RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["PROTECTED_METHODS", "register"]

# Methods a service token may never be issued for (the reference's list).
PROTECTED_METHODS = frozenset(
    "com.atproto." + m
    for m in (
        "admin.sendEmail",
        "identity.requestPlcOperationSignature",
        "identity.signPlcOperation",
        "identity.updateHandle",
        "server.activateAccount",
        "server.confirmEmail",
        "server.createAppPassword",
        "server.deactivateAccount",
        "server.getAccountInviteCodes",
        "server.getSession",
        "server.listAppPasswords",
        "server.requestAccountDelete",
        "server.requestEmailConfirmation",
        "server.requestEmailUpdate",
        "server.revokeAppPassword",
        "server.updateEmail",
    )
)
DELETE_TOKEN_TTL = 15 * 60
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _is_privileged_method(lxm: str) -> bool:
    return lxm.startswith("chat.bsky.") or lxm == "com.atproto.server.createAccount"


def random_token() -> str:
    """``xxxxx-xxxxx`` in base32 (invite codes, email tokens), as the reference formats them."""
    chars = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


def _invite_json(code: invites.InviteCode) -> dict[str, Any]:
    return {
        "code": code.code,
        "available": code.available,
        "disabled": code.disabled,
        "forAccount": code.for_account,
        "createdBy": code.created_by,
        "createdAt": code.created_at,
        "uses": [{"usedBy": u.used_by, "usedAt": u.used_at} for u in code.uses],
    }


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    config = ctx.config
    auth = ctx.auth

    def new_invite_code() -> str:
        return config.hostname.replace(".", "-") + "-" + random_token()

    @router.query("com.atproto.server.describeServer")
    async def describe_server(req: XRPCRequest) -> dict[str, Any]:
        out: dict[str, Any] = {
            "did": config.service_did,
            "availableUserDomains": list(config.service_handle_domains or ()),
            "inviteCodeRequired": config.invite_required,
            "phoneVerificationRequired": False,
            "links": {},
        }
        if config.privacy_policy_url:
            out["links"]["privacyPolicy"] = config.privacy_policy_url
        if config.terms_of_service_url:
            out["links"]["termsOfService"] = config.terms_of_service_url
        if config.contact_email:
            out["contact"] = {"email": config.contact_email}
        return out

    # --- account creation -----------------------------------------------------------------------------

    create_limits = [RouteRateLimit(RateLimiter("create-account", 100, 300))] if config.rate_limits else []

    async def optional_service_auth(req: XRPCRequest) -> Credentials:
        if not req.headers.get("Authorization"):
            return Credentials("none")
        iss = await verify_service_auth(ctx, req, "com.atproto.server.createAccount")
        return Credentials("service", iss)

    @router.procedure(
        "com.atproto.server.createAccount", auth=optional_service_auth, rate_limits=create_limits
    )
    async def create_account(req: XRPCRequest) -> dict[str, Any]:
        body = req.body
        if body.get("plcOp") is not None:
            raise InvalidRequestError('Unsupported input: "plcOp"')
        password = body.get("password")
        if password is not None and (
            not isinstance(password, str) or len(password) > NEW_PASSWORD_MAX_LENGTH
        ):
            raise InvalidRequestError(
                f"Password too long. Maximum length is {NEW_PASSWORD_MAX_LENGTH} characters."
            )
        invite_code = body.get("inviteCode")
        if config.invite_required and not invite_code:
            raise InvalidRequestError("No invite code provided", "InvalidInviteCode")
        email = body.get("email")
        if not email:
            raise InvalidRequestError("Email is required")
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise InvalidRequestError("This email address is not supported, please use a different email.")
        did = body.get("did")
        if did is not None:
            if not isinstance(did, str) or not is_valid_did(did):
                raise InvalidRequestError("Invalid DID")
            if req.auth.did != did:
                raise AuthRequiredError(f"Missing auth to create account with did: {did}")
        handle = await ctx.accounts.normalize_and_validate_handle(body.get("handle"), did)
        if config.invite_required and invite_code:
            code = await ctx.db.read(lambda conn: invites.get_invite_code(conn, invite_code))
            if code is None or code.disabled or code.remaining <= 0:
                raise InvalidRequestError("Provided invite code not available", "InvalidInviteCode")

        def taken(conn: sqlite3.Connection) -> tuple[bool, bool]:
            return accounts.get_by_handle(conn, handle) is not None, accounts.get_by_email(
                conn, email
            ) is not None

        handle_taken, email_taken = await ctx.db.read(taken)
        if handle_taken:
            raise InvalidRequestError(f"Handle already taken: {handle}")
        if email_taken:
            raise InvalidRequestError(f"Email already taken: {email}")
        hashed = await asyncio.to_thread(hash_password, password) if password else None
        new = NewAccount(
            handle=handle,
            email=email,
            password_scrypt=hashed,
            did=did,
            recovery_key=body.get("recoveryKey"),
            invite_code=invite_code if config.invite_required else None,
        )
        new_did, did_doc, tokens = await ctx.accounts.create(new)
        out: dict[str, Any] = {
            "handle": handle,
            "did": new_did,
            "accessJwt": tokens.access_jwt,
            "refreshJwt": tokens.refresh_jwt,
        }
        if did_doc is not None:
            out["didDoc"] = did_doc
        return out

    # --- invites --------------------------------------------------------------------------------------

    @router.procedure("com.atproto.server.createInviteCode", auth=auth.admin)
    async def create_invite_code(req: XRPCRequest) -> dict[str, Any]:
        uses = req.body.get("useCount")
        if type(uses) is not int or uses < 1:
            raise InvalidRequestError("useCount must be a positive integer")
        for_account = req.body.get("forAccount") or "admin"
        code = new_invite_code()
        now = iso_time(ctx.clock())
        await ctx.db.execute_write(
            lambda conn: invites.insert_invite_codes(conn, [code], uses, for_account, "admin", now)
        )
        return {"code": code}

    @router.procedure("com.atproto.server.createInviteCodes", auth=auth.admin)
    async def create_invite_codes(req: XRPCRequest) -> dict[str, Any]:
        uses = req.body.get("useCount")
        count = req.body.get("codeCount", 1)
        if type(uses) is not int or uses < 1 or type(count) is not int or not 1 <= count <= 1000:
            raise InvalidRequestError("useCount and codeCount must be positive integers")
        for_accounts = req.body.get("forAccounts") or ["admin"]
        now = iso_time(ctx.clock())
        result = [
            {"account": acct, "codes": [new_invite_code() for _ in range(count)]} for acct in for_accounts
        ]

        def write(conn: sqlite3.Connection) -> None:
            for entry in result:
                invites.insert_invite_codes(conn, entry["codes"], uses, entry["account"], "admin", now)

        await ctx.db.execute_write(write)
        return {"codes": result}

    @router.query(
        "com.atproto.server.getAccountInviteCodes", auth=auth.access(ACCESS_FULL, check_takedown=True)
    )
    async def get_account_invite_codes(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        include_used = req.params.get("includeUsed", True)
        codes = await ctx.db.read(lambda conn: invites.account_invite_codes(conn, did))
        if include_used is False or include_used == "false":
            codes = [c for c in codes if c.remaining > 0]
        return {"codes": [_invite_json(c) for c in codes]}

    # --- status ---------------------------------------------------------------------------------------

    @router.query("com.atproto.server.checkAccountStatus", auth=auth.access_standard)
    async def check_account_status(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)

        def read(conn: sqlite3.Connection) -> tuple[Any, ...]:
            account = accounts.get_account(conn, did)
            head = repo_store.get_root(conn, did)
            blocks = conn.execute("SELECT count(*) FROM repo_block WHERE did = ?", (did,)).fetchone()[0]
            records = conn.execute("SELECT count(*) FROM record WHERE did = ?", (did,)).fetchone()[0]
            expected = conn.execute(
                "SELECT count(DISTINCT blob_cid) FROM record_blob WHERE did = ?", (did,)
            ).fetchone()[0]
            imported = conn.execute(
                "SELECT count(*) FROM blob WHERE did = ? AND temp_key IS NULL", (did,)
            ).fetchone()[0]
            prefs = conn.execute("SELECT count(*) FROM account_pref WHERE did = ?", (did,)).fetchone()[0]
            return account, head, blocks, records, expected, imported, prefs

        account, head, blocks, records, expected, imported, prefs = await ctx.db.read(read)
        if account is None:
            raise InvalidRequestError("Account not found", "AccountNotFound")
        return {
            "activated": account.status is None,
            "validDid": await _did_points_here(ctx, account),
            "repoCommit": head[0].encode() if head else "",
            "repoRev": head[1] if head else "",
            "repoBlocks": blocks,
            "indexedRecords": records,
            "privateStateValues": prefs,
            "expectedBlobs": expected,
            "importedBlobs": imported,
        }

    @router.procedure("com.atproto.server.deactivateAccount", auth=auth.access(ACCESS_FULL))
    async def deactivate_account(req: XRPCRequest) -> None:
        delete_after = req.body.get("deleteAfter") if isinstance(req.body, dict) else None
        await ctx.accounts.deactivate(auth_did(req), delete_after)

    @router.procedure("com.atproto.server.activateAccount", auth=auth.access(ACCESS_FULL), input=None)
    async def activate_account(req: XRPCRequest) -> None:
        did = auth_did(req)
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("user not found", "AccountNotFound")
        if account.status is None:
            return
        problem = await _did_problem(ctx, account)
        if problem is not None:
            raise InvalidRequestError(problem)
        await ctx.accounts.activate(did)

    # --- deletion -------------------------------------------------------------------------------------

    @router.procedure(
        "com.atproto.server.requestAccountDelete",
        auth=auth.access(ACCESS_FULL, check_takedown=True),
        input=None,
    )
    async def request_account_delete(req: XRPCRequest) -> None:
        did = auth_did(req)
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("account not found")
        if not account.email:
            raise InvalidRequestError("account does not have an email address")
        token = random_token().upper()
        now = iso_time(ctx.clock())
        text = (
            f"A request was made to delete the account {account.handle} ({did}).\n"
            f"Confirm with this token: {token}\nIt expires in 15 minutes.\n"
        )

        def write(conn: sqlite3.Connection) -> None:
            sessions.put_email_token(conn, did, "delete_account", token, now)
            mail.enqueue_mail(conn, did, account.email or "", "Account Deletion Request", text, now)

        await ctx.db.execute_write(write)

    delete_limits = [RouteRateLimit(RateLimiter("delete-account", 50, 300))] if config.rate_limits else []

    @router.procedure("com.atproto.server.deleteAccount", rate_limits=delete_limits)
    async def delete_account(req: XRPCRequest) -> None:
        did, password, token = req.body.get("did"), req.body.get("password"), req.body.get("token")
        if not isinstance(did, str) or not isinstance(password, str) or not isinstance(token, str):
            raise InvalidRequestError("did, password and token are required")
        if len(password) > OLD_PASSWORD_MAX_LENGTH:
            raise AuthRequiredError("Password too long. Consider resetting your password.")

        def read(conn: sqlite3.Connection) -> tuple[Any, Any]:
            return accounts.get_account(conn, did), sessions.get_email_token(conn, did, "delete_account")

        account, stored = await ctx.db.read(read)
        if account is None:
            raise InvalidRequestError("account not found")
        if not account.password_scrypt or not await asyncio.to_thread(
            verify_password, password, account.password_scrypt
        ):
            raise AuthRequiredError("Invalid did or password")
        if stored is None or stored[0] != token.upper():
            raise InvalidRequestError("Token is invalid", "InvalidToken")
        if _age_seconds(stored[1], ctx.clock()) > DELETE_TOKEN_TTL:
            raise InvalidRequestError("Token is expired", "ExpiredToken")
        await ctx.accounts.delete(did)

    # --- service auth ---------------------------------------------------------------------------------

    @router.query("com.atproto.server.getServiceAuth", auth=auth.access_standard)
    async def get_service_auth(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        aud = req.params.get("aud")
        lxm = req.params.get("lxm")
        exp = req.params.get("exp")
        if not isinstance(aud, str) or not is_valid_did(aud.split("#", 1)[0]):
            raise InvalidRequestError("aud must be a valid atproto DID or did#serviceId reference")
        if lxm is not None and (not isinstance(lxm, str) or not is_valid_nsid(lxm)):
            raise InvalidRequestError("lxm must be an NSID")
        if lxm is not None and _is_privileged_method(lxm) and req.auth.scope not in ACCESS_PRIVILEGED:
            raise InvalidRequestError(
                f"insufficient access to request a service auth token for the following method: {lxm}"
            )
        now = int(ctx.clock())
        if exp is not None:
            if isinstance(exp, str):
                if not exp.isdigit():
                    raise InvalidRequestError("exp must be an integer")
                exp = int(exp)
            diff = exp - now
            if diff < 0:
                raise InvalidRequestError("expiration is in past", "BadExpiration")
            if diff > 3600:
                raise InvalidRequestError(
                    "cannot request a token with an expiration more than an hour in the future",
                    "BadExpiration",
                )
            if lxm is None and diff > 60:
                raise InvalidRequestError(
                    "cannot request a method-less token with an expiration more than a minute in the future",
                    "BadExpiration",
                )
        else:
            exp = now + 60
        if lxm is not None and lxm in PROTECTED_METHODS:
            raise InvalidRequestError(
                f"cannot request a service auth token for the following protected method: {lxm}"
            )
        key = await ctx.repo.signing_key(did)
        return {"token": create_service_jwt(key, iss=did, aud=aud, iat=now, exp=exp, lxm=lxm)}


def _age_seconds(stamp: str, now: float) -> float:
    from datetime import datetime

    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")
    return now - then


async def _did_problem(ctx: PdsContext, account: accounts.Account) -> str | None:
    """Why ``account``'s DID document does not point at this PDS with its key (None when it does)."""
    try:
        doc = await ctx.did_resolver.resolve_doc(account.did, refresh=True)
        identity = parse_did_doc(doc, account.did)
    except (IdentityError, ValueError) as exc:
        return f"Could not resolve DID: {exc}"
    if account.did.startswith("did:plc:") and account.rotation_key is not None:
        try:
            data = await ctx.plc.get_data(account.did)
        except IdentityError as exc:
            return f"Could not resolve DID: {exc}"
        if account.rotation_key.did_key() not in data.get("rotationKeys", []):
            return "Server rotation key not included in PLC DID data"
    if identity.pds_endpoint != ctx.config.public_url:
        return "DID document atproto_pds service endpoint does not match PDS public url"
    if identity.signing_key != account.signing_key.public_key.multikey():
        return "DID document verification method does not match expected signing key"
    return None


async def _did_points_here(ctx: PdsContext, account: accounts.Account) -> bool:
    return await _did_problem(ctx, account) is None
