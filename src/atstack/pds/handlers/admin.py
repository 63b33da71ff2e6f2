"""``com.atproto.admin``: account views, takedowns and status, handle/email/password changes, deletion,
invites, search and moderation email — all behind HTTP Basic ``admin:<admin password>`` (else 401).

Spec: atproto.com/specs/account ("Account Status"), /xrpc ("Admin auth"), checklist §8, §10; behaviour
anchored on the reference PDS:

* ``updateSubjectStatus`` with a ``repoRef``: ``takedown`` takes the account down (sessions revoked) or
  restores it, ``deactivated`` deactivates or reactivates it — each emitting ``#account``; with neither,
  the current status is emitted again. With a ``strongRef`` or ``repoBlobRef`` it sets the record's or
  blob's takedown (a taken-down blob is no longer served, referenced or re-uploaded). Takedown and
  activation at once is refused. ``getSubjectStatus`` reads the same states back (400 ``NotFound``);
* ``getAccountInfo(s)``: ``accountView`` with invites, the code the account signed up with, email
  confirmation and deactivation time; an unknown DID is 400 ``NotFound`` (``getAccountInfos`` skips it);
* ``updateAccountHandle`` goes through the same path as ``identity.updateHandle`` (PLC update,
  ``#identity``) but accepts any valid handle; ``updateAccountEmail`` clears the confirmation and every
  outstanding email token; ``updateAccountPassword`` revokes the account's sessions; ``deleteAccount``
  removes everything and emits ``#account`` (deleted);
* invites: ``getInviteCodes`` (``sort`` recent|usage, limit 1–500), ``disableInviteCodes`` (codes and/or
  accounts; ``admin`` codes cannot be disabled this way), ``disable``/``enableAccountInvites``;
* ``searchAccounts`` matches a substring of the email address; ``sendEmail`` queues a message in the mail
  outbox and answers ``{"sent": true}``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Any

from atstack.core.cid import InvalidCID, parse_cid
from atstack.core.syntax import InvalidSyntax, parse_at_uri
from atstack.pds.accounts import HANDLE_INVALID
from atstack.pds.handlers._email_tokens import RESET_PASSWORD
from atstack.pds.handlers._params import int_param
from atstack.pds.handlers._util import find_account
from atstack.pds.identity_ops import update_handle
from atstack.pds.passwords import NEW_PASSWORD_MAX_LENGTH, hash_password
from atstack.pds.sequencer import EventBatch
from atstack.pds.store import (
    account_admin,
    accounts,
    blob_maintenance,
    blobs,
    invites,
    iso_time,
    mail,
    sessions,
)
from atstack.pds.store.invites import InviteCode
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["account_view", "invite_code_json", "register"]

REPO_REF = "com.atproto.admin.defs#repoRef"
STRONG_REF = "com.atproto.repo.strongRef"
BLOB_REF = "com.atproto.admin.defs#repoBlobRef"
_DEFAULT_EMAIL_SUBJECT = "Message via your PDS"


def invite_code_json(code: InviteCode) -> dict[str, Any]:
    """``com.atproto.server.defs#inviteCode``."""
    return {
        "code": code.code,
        "available": code.available,
        "disabled": code.disabled,
        "forAccount": code.for_account,
        "createdBy": code.created_by,
        "createdAt": code.created_at,
        "uses": [{"usedBy": u.used_by, "usedAt": u.used_at} for u in code.uses],
    }


def account_view(conn: sqlite3.Connection, account: accounts.Account) -> dict[str, Any]:
    """``com.atproto.admin.defs#accountView`` of one account (read inside a transaction)."""
    view: dict[str, Any] = {
        "did": account.did,
        "handle": account.handle or HANDLE_INVALID,
        "indexedAt": account.created_at,
        "invites": [invite_code_json(c) for c in invites.account_invite_codes(conn, account.did)],
        "invitesDisabled": account.invites_disabled,
    }
    if account.email:
        view["email"] = account.email
    if account.email_confirmed_at:
        view["emailConfirmedAt"] = account.email_confirmed_at
    if account.deactivated_at:
        view["deactivatedAt"] = account.deactivated_at
    used = account_admin.invited_by(conn, account.did)
    if used is not None:
        view["invitedBy"] = invite_code_json(used)
    return view


def _status_attr(ref: str | None) -> dict[str, Any]:
    return {"applied": True, "ref": ref} if ref is not None else {"applied": False}


def _applied(value: Any, name: str) -> tuple[bool, str | None] | None:
    """A ``statusAttr`` input as ``(applied, ref)``; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("applied"), bool):
        raise InvalidRequestError(f"{name} must be a statusAttr object")
    ref = value.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise InvalidRequestError(f"{name}.ref must be a string")
    return value["applied"], ref


def _record_path(uri: Any) -> tuple[str, str, str]:
    if not isinstance(uri, str):
        raise InvalidRequestError("uri is required")
    try:
        parsed = parse_at_uri(uri)
    except (InvalidSyntax, ValueError):
        raise InvalidRequestError(f"Invalid AT-URI: {uri[:300]}") from None
    if not parsed.authority.startswith("did:") or not parsed.collection or not parsed.rkey:
        raise InvalidRequestError("The URI must name a record by DID, collection and record key")
    return parsed.authority, parsed.collection, parsed.rkey


def _cid(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} is required")
    try:
        return parse_cid(value)
    except (InvalidCID, ValueError):
        raise InvalidRequestError(f"{name} is not a valid CID") from None


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    admin = ctx.auth.admin

    def now() -> str:
        return iso_time(ctx.clock())

    async def require_account(did: Any) -> accounts.Account:
        if not isinstance(did, str):
            raise InvalidRequestError("did is required")
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("Account not found", "NotFound")
        return account

    # --- account views --------------------------------------------------------------------------------

    @router.query("com.atproto.admin.getAccountInfo", auth=admin)
    async def get_account_info(req: XRPCRequest) -> dict[str, Any]:
        account = await require_account(req.params.get("did"))
        return await ctx.db.read(lambda conn: account_view(conn, account))

    @router.query("com.atproto.admin.getAccountInfos", auth=admin)
    async def get_account_infos(req: XRPCRequest) -> dict[str, Any]:
        dids = req.params.get("dids") or []
        if isinstance(dids, str):
            dids = [dids]

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            found = (accounts.get_account(conn, d) for d in dict.fromkeys(dids))
            return [account_view(conn, a) for a in found if a is not None]

        return {"infos": await ctx.db.read(read)}

    @router.query("com.atproto.admin.searchAccounts", auth=admin)
    async def search_accounts(req: XRPCRequest) -> dict[str, Any]:
        limit = int_param(req, "limit", 50, 1, 100)
        email = req.params.get("email")
        cursor = req.params.get("cursor")

        def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], str | None]:
            found = account_admin.search_accounts(
                conn,
                email if isinstance(email, str) else None,
                cursor if isinstance(cursor, str) else None,
                limit,
            )
            last = found[-1].did if len(found) == limit else None
            return [account_view(conn, a) for a in found], last

        views, next_cursor = await ctx.db.read(read)
        out: dict[str, Any] = {"accounts": views}
        if next_cursor is not None:
            out["cursor"] = next_cursor
        return out

    # --- subject status -------------------------------------------------------------------------------

    @router.procedure("com.atproto.admin.updateSubjectStatus", auth=admin)
    async def update_subject_status(req: XRPCRequest) -> dict[str, Any]:
        body = req.body
        subject = body.get("subject")
        if not isinstance(subject, dict):
            raise InvalidRequestError("subject is required")
        takedown = _applied(body.get("takedown"), "takedown")
        deactivated = _applied(body.get("deactivated"), "deactivated")
        if takedown is not None and takedown[0] and deactivated is not None and not deactivated[0]:
            raise InvalidRequestError("Cannot activate and takedown an account at the same time")
        kind = subject.get("$type")
        if kind == REPO_REF:
            account = await require_account(subject.get("did"))
            did = account.did
            if takedown is not None:
                ref = (takedown[1] or now()) if takedown[0] else None
                await ctx.accounts.set_takedown(did, ref)
            if deactivated is not None:
                if deactivated[0]:
                    await ctx.accounts.deactivate(did)
                else:
                    await ctx.accounts.activate(did)
            if takedown is None and deactivated is None:
                await _sequence_account_status(ctx, did)
        elif kind == STRONG_REF:
            did, collection, rkey = _record_path(subject.get("uri"))
            if takedown is not None:
                ref = (takedown[1] or now()) if takedown[0] else None
                changed = await ctx.db.execute_write(
                    lambda conn: account_admin.set_record_takedown(conn, did, collection, rkey, ref)
                )
                if not changed:
                    raise InvalidRequestError("Record not found", "NotFound")
        elif kind == BLOB_REF:
            did = subject.get("did")
            if not isinstance(did, str):
                raise InvalidRequestError("did is required")
            cid = _cid(subject.get("cid"), "cid")
            if takedown is not None:
                ref = (takedown[1] or now()) if takedown[0] else None
                changed = await ctx.db.execute_write(
                    lambda conn: blob_maintenance.set_blob_takedown(conn, did, cid, ref)
                )
                if not changed:
                    raise InvalidRequestError("Blob not found", "NotFound")
        else:
            raise InvalidRequestError(f"Invalid subject ({kind})")
        out: dict[str, Any] = {"subject": subject}
        if body.get("takedown") is not None:
            out["takedown"] = body["takedown"]
        return out

    @router.query("com.atproto.admin.getSubjectStatus", auth=admin)
    async def get_subject_status(req: XRPCRequest) -> dict[str, Any]:
        did, uri, blob = req.params.get("did"), req.params.get("uri"), req.params.get("blob")
        out: dict[str, Any] | None = None
        if blob is not None:
            if not isinstance(did, str):
                raise InvalidRequestError("Must provide a did to request blob state")
            cid = _cid(blob, "blob")
            row = await ctx.db.read(lambda conn: blobs.get_blob(conn, did, cid))
            if row is not None:
                out = {
                    "subject": {"$type": BLOB_REF, "did": did, "cid": cid.encode()},
                    "takedown": _status_attr(row.takedown_ref),
                }
        elif uri is not None:
            rdid, collection, rkey = _record_path(uri)
            found = await ctx.db.read(
                lambda conn: account_admin.get_record_takedown(conn, rdid, collection, rkey)
            )
            if found is not None:
                out = {
                    "subject": {"$type": STRONG_REF, "uri": uri, "cid": found[0].encode()},
                    "takedown": _status_attr(found[1]),
                }
        elif did is not None:
            account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
            if account is not None:
                out = {
                    "subject": {"$type": REPO_REF, "did": account.did},
                    "takedown": _status_attr(account.takedown_ref),
                    # deactivation outlives a takedown (restoring one leaves the account deactivated)
                    "deactivated": {"applied": account.deactivated_at is not None},
                }
        else:
            raise InvalidRequestError("No provided subject")
        if out is None:
            raise InvalidRequestError("Subject not found", "NotFound")
        return out

    # --- account changes ------------------------------------------------------------------------------

    @router.procedure("com.atproto.admin.updateAccountHandle", auth=admin)
    async def update_account_handle(req: XRPCRequest) -> None:
        account = await require_account(req.body.get("did"))
        await update_handle(ctx, account.did, req.body.get("handle"), allow_any_valid=True)

    @router.procedure("com.atproto.admin.updateAccountEmail", auth=admin)
    async def update_account_email(req: XRPCRequest) -> None:
        ident, email = req.body.get("account"), req.body.get("email")
        if not isinstance(ident, str) or not isinstance(email, str) or not email:
            raise InvalidRequestError("account and email are required")
        account = await find_account(ctx, ident)
        if account is None:
            raise InvalidRequestError(f"Account does not exist: {ident}")
        did = account.did

        def write(conn: sqlite3.Connection) -> None:
            other = accounts.get_by_email(conn, email)
            if other is not None and other.did != did:
                raise InvalidRequestError(f"Email already taken: {email}")
            accounts.set_email(conn, did, email, None)
            account_admin.delete_email_tokens(conn, did)

        await ctx.db.execute_write(write)

    @router.procedure("com.atproto.admin.updateAccountPassword", auth=admin)
    async def update_account_password(req: XRPCRequest) -> None:
        password = req.body.get("password")
        if not isinstance(password, str) or not password or len(password) > NEW_PASSWORD_MAX_LENGTH:
            raise InvalidRequestError("Invalid password length.")
        account = await require_account(req.body.get("did"))
        hashed = await asyncio.to_thread(hash_password, password)
        await ctx.db.execute_write(lambda conn: _set_password(conn, account.did, hashed))

    @router.procedure("com.atproto.admin.deleteAccount", auth=admin)
    async def delete_account(req: XRPCRequest) -> None:
        account = await require_account(req.body.get("did"))
        await ctx.accounts.delete(account.did)

    # --- invites --------------------------------------------------------------------------------------

    @router.query("com.atproto.admin.getInviteCodes", auth=admin)
    async def get_invite_codes(req: XRPCRequest) -> dict[str, Any]:
        sort = req.params.get("sort") or "recent"
        limit = int_param(req, "limit", 100, 1, 500)
        raw_cursor = req.params.get("cursor")
        cursor: tuple[str, str] | None = None
        if isinstance(raw_cursor, str) and raw_cursor:
            value, sep, code = raw_cursor.partition("::")
            if not sep or not code:
                raise InvalidRequestError("Malformed cursor")
            cursor = (value, code)
        if sort not in ("recent", "usage"):
            raise InvalidRequestError(f"unknown sort method: {sort}")

        def read(conn: sqlite3.Connection) -> list[tuple[InviteCode, str]]:
            try:
                return account_admin.list_invite_codes(conn, sort, cursor, limit)
            except ValueError:
                raise InvalidRequestError("Malformed cursor") from None

        page = await ctx.db.read(read)
        out: dict[str, Any] = {"codes": [invite_code_json(c) for c, _ in page]}
        if len(page) == limit:
            last, value = page[-1]
            out["cursor"] = f"{value}::{last.code}"
        return out

    @router.procedure("com.atproto.admin.disableInviteCodes", auth=admin)
    async def disable_invite_codes(req: XRPCRequest) -> None:
        codes = req.body.get("codes") or []
        holders = req.body.get("accounts") or []
        if not all(isinstance(c, str) for c in codes) or not all(isinstance(a, str) for a in holders):
            raise InvalidRequestError("codes and accounts must be arrays of strings")
        if "admin" in holders:
            raise InvalidRequestError("cannot disable admin invite codes")

        def write(conn: sqlite3.Connection) -> None:
            invites.disable_codes(conn, list(codes))
            account_admin.disable_account_codes(conn, list(holders))

        await ctx.db.execute_write(write)

    async def set_account_invites(req: XRPCRequest, disabled: bool) -> None:
        account = await require_account(req.body.get("account"))
        await ctx.db.execute_write(lambda conn: invites.disable_account_invites(conn, account.did, disabled))

    @router.procedure("com.atproto.admin.disableAccountInvites", auth=admin)
    async def disable_account_invites(req: XRPCRequest) -> None:
        await set_account_invites(req, True)

    @router.procedure("com.atproto.admin.enableAccountInvites", auth=admin)
    async def enable_account_invites(req: XRPCRequest) -> None:
        await set_account_invites(req, False)

    # --- email ----------------------------------------------------------------------------------------

    @router.procedure("com.atproto.admin.sendEmail", auth=admin)
    async def send_email(req: XRPCRequest) -> dict[str, Any]:
        body = req.body
        content, subject = body.get("content"), body.get("subject") or _DEFAULT_EMAIL_SUBJECT
        if not isinstance(content, str) or not isinstance(subject, str):
            raise InvalidRequestError("content must be a string")
        recipient = body.get("recipientDid")
        account = (
            await ctx.db.read(lambda conn: accounts.get_account(conn, recipient))
            if isinstance(recipient, str)
            else None
        )
        if account is None:
            raise InvalidRequestError("Recipient not found")
        if not account.email:
            raise InvalidRequestError("account does not have an email address")
        to, stamp = account.email, now()
        await ctx.db.execute_write(
            lambda conn: mail.enqueue_mail(conn, account.did, to, subject, content, stamp)
        )
        return {"sent": True}


def _set_password(conn: sqlite3.Connection, did: str, hashed: str) -> None:
    accounts.set_password(conn, did, hashed)
    sessions.delete_email_token(conn, did, RESET_PASSWORD)
    sessions.revoke_refresh_tokens_for(conn, did)


async def _sequence_account_status(ctx: PdsContext, did: str) -> None:
    """Emit ``#account`` with the account's current status (an admin asking relays to re-check it)."""

    def write(conn: sqlite3.Connection, events: EventBatch) -> None:
        account = accounts.get_account(conn, did)
        if account is None:
            ctx.sequencer.append_account(conn, events, did, False, "deleted")
        else:
            ctx.sequencer.append_account(conn, events, did, account.status is None, account.status)

    await ctx.sequencer.transact(write)
