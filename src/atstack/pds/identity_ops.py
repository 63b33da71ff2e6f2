"""Identity changes the PDS makes for its accounts: handle updates and PLC operations signed with the
account's PDS-held rotation key.

Spec: atproto.com/specs/handle, /did, the did:plc method specification; checklist §9. Behaviour anchored on
the reference PDS's account manager:

* a handle update validates the handle (service-domain rules, or — for other domains — that it already
  resolves to the DID; the admin may skip that check), refuses one another account holds (400
  ``HandleNotAvailable``), then for a did:plc appends a PLC operation replacing the ``at://`` alias
  (skipped when the directory already says so), and finally stores the handle and emits ``#identity`` in
  one transaction (:meth:`atstack.pds.accounts.AccountManager.update_handle`). A did:web's document must
  already claim the handle. The PLC update is not rolled back if the last step fails: repeating the
  request repairs it (and re-emits the event);
* PLC operations are built from the DID's last operation (``/log/last``) and signed with the rotation key
  this PDS generated for the account; a DID whose rotation keys no longer include it, or that is
  tombstoned, is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atstack.core.did_doc import parse_did_doc
from atstack.core.plc_op import InvalidOperation, create_update_op
from atstack.core.plc_op.operation import rotation_keys_of
from atstack.core.syntax import InvalidSyntax, is_disallowed_tld, normalize_handle
from atstack.identity import IdentityError, PlcError
from atstack.pds.store import accounts
from atstack.pds.store.accounts import Account
from atstack.xrpc.errors import InvalidRequestError, UpstreamFailureError

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["last_plc_op", "plc_error", "sign_plc_update", "submit_plc_op", "update_handle", "validate_handle"]


def plc_error(exc: PlcError) -> InvalidRequestError | UpstreamFailureError:
    """A directory refusal (4xx) is the caller's problem; anything else is upstream trouble."""
    if exc.status is not None and 400 <= exc.status < 500:
        return InvalidRequestError(f"PLC directory refused the operation: {exc.message}")
    return UpstreamFailureError(f"PLC directory unavailable: {exc.message}")


async def validate_handle(ctx: PdsContext, raw: Any, did: str, *, allow_any_valid: bool = False) -> str:
    """The normalized handle, checked as account creation checks it (``allow_any_valid``: the admin may
    set any syntactically valid handle outside our domains without it resolving yet)."""
    if not allow_any_valid:
        return await ctx.accounts.normalize_and_validate_handle(raw, did)
    if not isinstance(raw, str):
        raise InvalidRequestError("Handle is required", "InvalidHandle")
    try:
        handle = normalize_handle(raw)
    except InvalidSyntax as exc:
        raise InvalidRequestError(f"Invalid handle: {exc}", "InvalidHandle") from None
    if is_disallowed_tld(handle, dev=ctx.config.dev):
        raise InvalidRequestError("Handle TLD is invalid or disallowed", "InvalidHandle")
    if ctx.accounts.is_service_handle(handle):
        return await ctx.accounts.normalize_and_validate_handle(handle, did)
    return handle


async def last_plc_op(ctx: PdsContext, did: str) -> dict[str, Any]:
    try:
        op = await ctx.plc.get_last_op(did)
    except PlcError as exc:
        raise plc_error(exc) from None
    if op.get("type") == "plc_tombstone":
        raise InvalidRequestError("Did is tombstoned")
    return op


def _rotation_key(account: Account) -> Any:
    if not account.did.startswith("did:plc:"):
        raise InvalidRequestError("Only did:plc accounts have PLC operations")
    key = account.rotation_key
    if key is None:
        raise InvalidRequestError("This PDS holds no rotation key for the account")
    return key


def sign_plc_update(account: Account, last_op: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A signed update of ``last_op`` with ``changes`` (:func:`atstack.core.plc_op.create_update_op`)."""
    key = _rotation_key(account)
    if key.did_key() not in rotation_keys_of(last_op):
        raise InvalidRequestError("The DID's rotation keys do not include this PDS's rotation key")
    try:
        return create_update_op(last_op, key, **changes)
    except InvalidOperation as exc:
        raise InvalidRequestError(f"Invalid PLC operation: {exc}") from None


async def submit_plc_op(ctx: PdsContext, did: str, op: dict[str, Any]) -> None:
    try:
        await ctx.plc.submit_operation(did, op)
    except PlcError as exc:
        raise plc_error(exc) from None
    ctx.did_resolver.invalidate(did)


async def update_handle(ctx: PdsContext, did: str, raw: Any, *, allow_any_valid: bool = False) -> str:
    """Change the account's handle everywhere (see the module docstring); returns the new handle."""
    account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
    if account is None or account.status == "takendown":
        raise InvalidRequestError("Account not found")
    handle = await validate_handle(ctx, raw, did, allow_any_valid=allow_any_valid)
    holder = await ctx.db.read(lambda conn: accounts.get_by_handle(conn, handle))
    if holder is not None and holder.did != did:
        raise InvalidRequestError(f"Handle already taken: {handle}", "HandleNotAvailable")
    if did.startswith("did:plc:"):
        last = await last_plc_op(ctx, did)
        aka = [a for a in last.get("alsoKnownAs", []) if isinstance(a, str) and a.startswith("at://")]
        if not aka or aka[0] != f"at://{handle}":
            await submit_plc_op(ctx, did, sign_plc_update(account, last, handle=handle))
    else:
        try:
            doc = await ctx.did_resolver.resolve_doc(did, refresh=True)
            claimed = parse_did_doc(doc, did).handle
        except (IdentityError, ValueError):
            claimed = None
        if claimed != handle:
            raise InvalidRequestError("DID is not properly configured for handle")
    await ctx.accounts.update_handle(did, handle)
    ctx.handle_resolver.invalidate(handle)
    if account.handle:
        ctx.handle_resolver.invalidate(account.handle)
    return handle
