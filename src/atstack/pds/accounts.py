"""Account lifecycle on this PDS: handles, creation, status changes, deletion — each with its events.

Spec: atproto.com/specs/account, /handle, /did, checklist §1, §6, §9–§10; behaviour anchored on the reference
PDS's account manager and ``createAccount``:

* hosted handles end in one of the service domains and have a single 3–18 character label in front;
  other handles must already resolve to the DID (bring-your-own-DID accounts only); syntax errors and
  reserved TLDs are 400 ``InvalidHandle``, a domain we do not serve is 400 ``UnsupportedDomain``;
* a new did:plc account: a k256 signing key and a PDS-held k256 rotation key are generated, a genesis
  operation (handle, PDS endpoint, signing key; the client's ``recoveryKey`` first among the rotation keys)
  is submitted to the PLC directory, then account, first commit, session and the events ``#identity``,
  ``#account`` (active), ``#commit`` are written in one transaction;
* status changes emit ``#account``; lifting a takedown restores the status from before it (deactivated
  stays deactivated); reactivation emits ``#account`` (active), ``#identity`` and a ``#sync``
  of the current commit, as the reference does; deletion removes every row and blob file of the account
  and emits ``#account`` with status ``deleted``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.crypto import PrivateKey, generate_private_key
from atstack.core.did_doc import ATPROTO_PDS_TYPE
from atstack.core.plc_op import InvalidOperation, create_genesis_op, create_tombstone_op, did_for_genesis
from atstack.core.repo import CommitData, Repo
from atstack.core.syntax import InvalidSyntax, is_disallowed_tld, normalize_handle
from atstack.identity import IdentityError, PlcError
from atstack.pds.repo_writer import store_new_repo
from atstack.pds.sequencer import EventBatch
from atstack.pds.store import accounts, invites, iso_time, sessions
from atstack.pds.store import repo as repo_store
from atstack.pds.store import sequencer as seq_store
from atstack.xrpc.errors import InvalidRequestError, UpstreamFailureError

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["HANDLE_INVALID", "AccountManager", "NewAccount"]

log = logging.getLogger("atstack.pds.accounts")

HANDLE_INVALID = "handle.invalid"
_SERVICE_LABEL_MIN = 3
_SERVICE_LABEL_MAX = 18


@dataclass(slots=True)
class NewAccount:
    """What :meth:`AccountManager.create` needs; the caller has checked password length and invite."""

    handle: str
    email: str | None
    password_scrypt: str | None
    did: str | None = None  # bring your own DID (created deactivated, no PLC operation)
    recovery_key: str | None = None
    invite_code: str | None = None


class AccountManager:
    def __init__(self, ctx: PdsContext) -> None:
        self.ctx = ctx

    # --- handles --------------------------------------------------------------------------------------

    def is_service_handle(self, handle: str) -> bool:
        return any(handle.endswith(d) for d in self.ctx.config.service_handle_domains or ())

    async def normalize_and_validate_handle(self, handle: Any, did: str | None = None) -> str:
        if not isinstance(handle, str):
            raise InvalidRequestError("Handle is required", "InvalidHandle")
        try:
            normalized = normalize_handle(handle)
        except InvalidSyntax as exc:
            raise InvalidRequestError(f"Invalid handle: {exc}", "InvalidHandle") from None
        if is_disallowed_tld(normalized, dev=self.ctx.config.dev):
            raise InvalidRequestError("Handle TLD is invalid or disallowed", "InvalidHandle")
        if self.is_service_handle(normalized):
            domain = next(d for d in self.ctx.config.service_handle_domains or () if normalized.endswith(d))
            front = normalized[: -len(domain)]
            if "." in front:
                raise InvalidRequestError("Invalid characters in handle", "InvalidHandle")
            if len(front) < _SERVICE_LABEL_MIN:
                raise InvalidRequestError("Handle too short", "InvalidHandle")
            if len(front) > _SERVICE_LABEL_MAX:
                raise InvalidRequestError("Handle too long", "InvalidHandle")
            return normalized
        if did is None:
            raise InvalidRequestError("Not a supported handle domain", "UnsupportedDomain")
        try:
            resolved = await self.ctx.handle_resolver.resolve(normalized)
        except IdentityError:
            resolved = None
        if resolved != did:
            raise InvalidRequestError("External handle did not resolve to DID", "InvalidHandle")
        return normalized

    # --- creation -------------------------------------------------------------------------------------

    async def create(self, new: NewAccount) -> tuple[str, dict[str, Any] | None, Any]:
        """Create the account; returns ``(did, did document or None, issued tokens)``."""
        ctx = self.ctx
        config = ctx.config
        signing = generate_private_key("k256")
        plc_op: dict[str, Any] | None = None
        # A PDS-held rotation key for every account: a migrated (bring-your-own) DID adds it to its PLC
        # data through the recommended credentials before activation.
        rotation = generate_private_key("k256")
        if new.did is None:
            rotation_keys: list[Any] = [rotation]
            if new.recovery_key:
                rotation_keys.insert(0, new.recovery_key)
            try:
                plc_op = create_genesis_op(
                    rotation,
                    rotation_keys,
                    {"atproto": signing.did_key()},
                    [f"at://{new.handle}"],
                    {"atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": config.public_url or ""}},
                )
            except InvalidOperation as exc:
                raise InvalidRequestError(f"Invalid account keys: {exc}") from None
            did = did_for_genesis(plc_op)
        else:
            did = new.did
        _repo, first_commit = Repo.create(MemoryBlockStore(), did, signing)
        if plc_op is not None:
            try:
                await ctx.plc.submit_operation(did, plc_op)
            except PlcError as exc:
                if exc.status == 400:
                    raise InvalidRequestError(f"PLC directory refused the DID: {exc}") from None
                raise UpstreamFailureError(f"PLC directory unavailable: {exc}") from None
        deactivated = new.did is not None
        tokens = ctx.auth.create_tokens(did)
        now = iso_time(ctx.clock())

        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            try:
                accounts.insert_account(
                    conn,
                    did=did,
                    handle=new.handle,
                    email=new.email,
                    password_scrypt=new.password_scrypt,
                    created_at=now,
                    signing_key=signing,
                    rotation_key=rotation,
                    status="deactivated" if deactivated else None,
                    deactivated_at=now if deactivated else None,
                )
            except sqlite3.IntegrityError:
                taken = accounts.get_by_handle(conn, new.handle)
                if taken is not None:
                    raise InvalidRequestError(f"Handle already taken: {new.handle}") from None
                if new.email and accounts.get_by_email(conn, new.email) is not None:
                    raise InvalidRequestError(f"Email already taken: {new.email}") from None
                raise InvalidRequestError(f"Account already exists: {did}") from None
            if new.invite_code:
                code = invites.get_invite_code(conn, new.invite_code)
                if code is None or code.disabled or code.remaining <= 0:
                    raise InvalidRequestError("Provided invite code not available", "InvalidInviteCode")
                invites.record_invite_use(conn, new.invite_code, did, now)
            store_new_repo(conn, did, first_commit, now)
            sessions.insert_refresh_token(conn, tokens.refresh_id, did, tokens.refresh_expires_at, None)
            if not deactivated:
                ctx.sequencer.append_identity(conn, events, did, new.handle)
                ctx.sequencer.append_account(conn, events, did, True, None)
                ctx.sequencer.append_commit(conn, events, did, first_commit)

        try:
            await ctx.sequencer.transact(write)
        except BaseException:
            if plc_op is not None:
                await self._tombstone(did, plc_op, rotation)
            raise
        did_doc = await self.resolve_did_doc(did)
        return did, did_doc, tokens

    async def _tombstone(self, did: str, genesis: dict[str, Any], rotation: PrivateKey) -> None:
        try:
            await self.ctx.plc.submit_operation(did, create_tombstone_op(genesis, rotation))
        except (PlcError, InvalidOperation) as exc:
            log.warning("could not tombstone %s after a failed account creation: %s", did, exc)

    async def resolve_did_doc(self, did: str, *, refresh: bool = True) -> dict[str, Any] | None:
        """The DID document (None, logged, when it cannot be resolved); cached unless ``refresh``."""
        try:
            return await self.ctx.did_resolver.resolve_doc(did, refresh=refresh)
        except IdentityError as exc:
            log.warning("could not resolve the DID document of %s: %s", did, exc)
            return None

    # --- status ---------------------------------------------------------------------------------------

    async def deactivate(self, did: str, delete_after: str | None = None) -> None:
        now = iso_time(self.ctx.clock())

        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            account = accounts.get_account(conn, did)
            if account is None:
                raise InvalidRequestError("Account not found", "AccountNotFound")
            if account.status == "takendown":
                raise InvalidRequestError("Account not found", "AccountNotFound")
            accounts.set_status(conn, did, "deactivated", deactivated_at=now, delete_after=delete_after)
            self.ctx.sequencer.append_account(conn, events, did, False, "deactivated")

        await self.ctx.sequencer.transact(write)

    async def activate(self, did: str) -> None:
        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            account = accounts.get_account(conn, did)
            if account is None or account.status == "takendown":
                raise InvalidRequestError("user not found", "AccountNotFound")
            head = repo_store.get_root(conn, did)
            if head is None:
                raise InvalidRequestError(f"No repo root found for {did}", "RepoNotFound")
            block = repo_store.get_block(conn, did, head[0])
            assert block is not None, "repo head block missing"
            accounts.set_status(conn, did, None)
            seq = self.ctx.sequencer
            seq.append_account(conn, events, did, True, None)
            seq.append_identity(conn, events, did, account.handle or HANDLE_INVALID)
            seq.append_sync(conn, events, did, head[0], block, head[1])

        await self.ctx.sequencer.transact(write)

    async def set_takedown(self, did: str, takedown_ref: str | None) -> str | None:
        """Take down (or restore) an account: the admin helper's entry point; emits ``#account`` with the
        status that results. Restoring returns the account to its state before the takedown (a deactivated
        account stays deactivated). Returns the new status (None: active)."""

        def write(conn: sqlite3.Connection, events: EventBatch) -> str | None:
            if not accounts.set_takedown(conn, did, takedown_ref):
                raise InvalidRequestError("Account not found", "AccountNotFound")
            if takedown_ref is not None:
                sessions.revoke_refresh_tokens_for(conn, did)
            account = accounts.get_account(conn, did)
            assert account is not None
            self.ctx.sequencer.append_account(conn, events, did, account.status is None, account.status)
            return account.status

        return await self.ctx.sequencer.transact(write)

    async def emit_identity(self, did: str, handle: str | None) -> None:
        """Sequence an ``#identity`` event (handle change, DID document update)."""

        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            self.ctx.sequencer.append_identity(conn, events, did, handle)

        await self.ctx.sequencer.transact(write)

    async def update_handle(self, did: str, handle: str) -> None:
        """Store a new handle and emit ``#identity`` in one transaction (the DID document is the caller's)."""

        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            other = accounts.get_by_handle(conn, handle)
            if other is not None and other.did != did:
                raise InvalidRequestError(f"Handle already taken: {handle}")
            if not accounts.set_handle(conn, did, handle):
                raise InvalidRequestError("Account not found", "AccountNotFound")
            self.ctx.sequencer.append_identity(conn, events, did, handle)

        await self.ctx.sequencer.transact(write)

    # --- deletion -------------------------------------------------------------------------------------

    async def delete(self, did: str) -> None:
        """Remove the account, its repo and blobs; emit ``#account`` (deleted) and drop the account's
        earlier events from the log (they are no longer replayed)."""

        def write(conn: sqlite3.Connection, events: EventBatch) -> None:
            accounts.delete_account_rows(conn, did)
            seq = self.ctx.sequencer.append_account(conn, events, did, False, "deleted")
            seq_store.delete_account_events(conn, did, seq)

        await self.ctx.sequencer.transact(write)
        await self.ctx.sequencer.refresh_oldest()
        await asyncio.to_thread(self.ctx.blobs.delete_account, did)

    def first_commit_for(self, did: str, key: PrivateKey) -> CommitData:
        """A fresh empty repo's first commit (used when an import starts from nothing)."""
        return Repo.create(MemoryBlockStore(), did, key)[1]
