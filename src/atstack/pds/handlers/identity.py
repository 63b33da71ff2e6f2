"""``com.atproto.identity``: updateHandle, the PLC operation flow, and DID/identity resolution.
(``resolveHandle`` and ``/.well-known/atproto-did`` are in :mod:`.handles`.)

Spec: atproto.com/specs/handle, /did, /account ("Account Migration"), the did:plc method specification;
checklist §9–§10. Behaviour anchored on the reference PDS:

* ``updateHandle`` (access token, not taken down; 10 per 5 minutes and 50 per day per account) — see
  :func:`atstack.pds.identity_ops.update_handle`: PLC update signed with the account's rotation key, then
  the handle stored and ``#identity`` emitted;
* ``getRecommendedDidCredentials`` — what a migrating account's DID should say for this PDS: the account's
  signing key as ``atproto``, this PDS's rotation key for it, its handle, our endpoint;
* ``requestPlcOperationSignature`` mails a token; ``signPlcOperation`` (full access, token required) signs
  an update of the DID's last operation with the given fields replaced; ``submitPlcOperation`` checks a
  signed operation keeps the account working here (our rotation key, our endpoint, its signing key, its
  handle first) before sending it to the directory and emitting ``#identity``;
* ``resolveDid`` / ``resolveIdentity`` / ``refreshIdentity`` (the last re-resolves, skipping caches, and
  needs an access token): 400 ``DidNotFound``/``DidDeactivated``/``HandleNotFound``; a handle the DID
  document does not claim back, or that does not resolve to the DID, is reported as ``handle.invalid``.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from atstack.core.did_doc import ATPROTO_PDS_TYPE, parse_did_doc
from atstack.core.plc_op import InvalidOperation, check_op_shape
from atstack.core.syntax import InvalidSyntax, is_valid_did, normalize_handle
from atstack.identity import DidNotFound, IdentityError, InvalidHandle
from atstack.pds.accounts import HANDLE_INVALID
from atstack.pds.auth import ACCESS_FULL
from atstack.pds.handlers._email_tokens import PLC_OPERATION, check_email_token, issue_email_token
from atstack.pds.handlers._util import auth_did
from atstack.pds.identity_ops import (
    last_plc_op,
    sign_plc_update,
    submit_plc_op,
    update_handle,
)
from atstack.pds.store import accounts, sessions
from atstack.xrpc.errors import InvalidRequestError, UpstreamFailureError
from atstack.xrpc.ratelimit import RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["register"]

_PLC_MAIL = (
    "We received a request to update the identity (PLC directory entry) of {handle} ({did}).\n"
    "If this was you, confirm with this code: {token}\n"
    "It expires in 15 minutes. If it was not you, you can ignore this message.\n"
)


def _str_list(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{name} must be an array of strings")
    return value


def _str_map(value: Any, name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidRequestError(f"{name} must map names to strings")
    return value


def _services(value: Any) -> dict[str, dict[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError("services must be an object")
    for svc in value.values():
        if not (
            isinstance(svc, dict)
            and svc.keys() == {"type", "endpoint"}
            and all(isinstance(v, str) for v in svc.values())
        ):
            raise InvalidRequestError("each service must be {type: string, endpoint: string}")
    return value


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth
    config = ctx.config

    async def account_of(did: str) -> accounts.Account:
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("account not found")
        return account

    # --- handle ---------------------------------------------------------------------------------------

    handle_limits = (
        [
            RouteRateLimit(RateLimiter("update-handle-5m", 10, 300), lambda r: r.auth.did),
            RouteRateLimit(RateLimiter("update-handle-day", 50, 86400), lambda r: r.auth.did),
        ]
        if config.rate_limits
        else []
    )

    @router.procedure(
        "com.atproto.identity.updateHandle",
        auth=auth.access(check_takedown=True),
        rate_limits=handle_limits,
    )
    async def update_handle_route(req: XRPCRequest) -> None:
        await update_handle(ctx, auth_did(req), req.body.get("handle"))

    # --- PLC operations -------------------------------------------------------------------------------

    @router.query("com.atproto.identity.getRecommendedDidCredentials", auth=auth.access_standard)
    async def get_recommended_did_credentials(req: XRPCRequest) -> dict[str, Any]:
        account = await account_of(auth_did(req))
        out: dict[str, Any] = {
            "verificationMethods": {"atproto": account.signing_key.did_key()},
            "rotationKeys": [account.rotation_key.did_key()] if account.rotation_key is not None else [],
            "services": {"atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": config.public_url}},
        }
        if account.handle:
            out["alsoKnownAs"] = [f"at://{account.handle}"]
        return out

    @router.procedure(
        "com.atproto.identity.requestPlcOperationSignature", auth=auth.access(ACCESS_FULL), input=None
    )
    async def request_plc_operation_signature(req: XRPCRequest) -> None:
        account = await account_of(auth_did(req))
        await issue_email_token(ctx, account, PLC_OPERATION, "PLC Update Operation Requested", _PLC_MAIL)

    @router.procedure("com.atproto.identity.signPlcOperation", auth=auth.access(ACCESS_FULL))
    async def sign_plc_operation(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        body = req.body
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequestError("email confirmation token required to sign PLC operations")
        changes: dict[str, Any] = {}
        if (keys := _str_list(body.get("rotationKeys"), "rotationKeys")) is not None:
            changes["rotation_keys"] = keys
        if (aka := _str_list(body.get("alsoKnownAs"), "alsoKnownAs")) is not None:
            changes["also_known_as"] = aka
        if (methods := _str_map(body.get("verificationMethods"), "verificationMethods")) is not None:
            changes["verification_methods"] = methods
        if (services := _services(body.get("services"))) is not None:
            changes["services"] = services
        now = ctx.clock()

        def consume(conn: sqlite3.Connection) -> None:
            check_email_token(conn, did, PLC_OPERATION, token, now)
            sessions.delete_email_token(conn, did, PLC_OPERATION)

        account = await account_of(did)
        await ctx.db.execute_write(consume)
        last = await last_plc_op(ctx, did)
        return {"operation": sign_plc_update(account, last, **changes)}

    @router.procedure("com.atproto.identity.submitPlcOperation", auth=auth.access_standard)
    async def submit_plc_operation(req: XRPCRequest) -> None:
        did = auth_did(req)
        op = req.body.get("operation")
        try:
            kind = check_op_shape(op)
        except InvalidOperation:
            raise InvalidRequestError("Invalid operation") from None
        if kind != "plc_operation":
            raise InvalidRequestError("Invalid operation")
        assert isinstance(op, dict)
        account = await account_of(did)
        if not did.startswith("did:plc:"):
            raise InvalidRequestError("Only did:plc accounts have PLC operations")
        rotation = account.rotation_key
        if rotation is None or rotation.did_key() not in op["rotationKeys"]:
            raise InvalidRequestError("Rotation keys do not include server's rotation key")
        pds = op["services"].get("atproto_pds")
        if not isinstance(pds, dict) or pds.get("type") != ATPROTO_PDS_TYPE:
            raise InvalidRequestError("Incorrect type on atproto_pds service")
        if pds.get("endpoint") != config.public_url:
            raise InvalidRequestError("Incorrect endpoint on atproto_pds service")
        if op["verificationMethods"].get("atproto") != account.signing_key.did_key():
            raise InvalidRequestError("Incorrect signing key")
        if account.handle and (op["alsoKnownAs"][:1] != [f"at://{account.handle}"]):
            raise InvalidRequestError("Incorrect handle in alsoKnownAs")
        await submit_plc_op(ctx, did, op)
        await ctx.accounts.emit_identity(did, account.handle)

    # --- resolution -----------------------------------------------------------------------------------

    async def resolve_doc(did: str, refresh: bool) -> dict[str, Any]:
        if not is_valid_did(did) or not did.startswith(("did:plc:", "did:web:")):
            raise InvalidRequestError(f"Unsupported DID: {did[:100]}")
        if refresh:
            # a failed refresh must not leave the stale document cached for later lookups
            ctx.did_resolver.invalidate(did)
        try:
            return await ctx.did_resolver.resolve_doc(did, refresh=refresh)
        except DidNotFound as exc:
            if exc.deactivated:
                raise InvalidRequestError(f"DID has been deactivated: {did}", "DidDeactivated") from None
            raise InvalidRequestError(f"DID not found: {did}", "DidNotFound") from None
        except IdentityError as exc:
            raise UpstreamFailureError(f"Could not resolve DID {did}: {exc}") from None

    async def did_of_handle(handle: str, refresh: bool) -> str | None:
        hosted = await ctx.db.read(lambda conn: accounts.get_by_handle(conn, handle))
        if hosted is not None and hosted.status != "takendown":
            return hosted.did
        if ctx.accounts.is_service_handle(handle):
            return None
        try:
            return await ctx.handle_resolver.resolve(handle, refresh=refresh)
        except InvalidHandle:
            raise InvalidRequestError("Invalid handle", "InvalidHandle") from None
        except IdentityError:
            return None

    async def resolve_identity(identifier: Any, refresh: bool) -> dict[str, Any]:
        if not isinstance(identifier, str) or not identifier:
            raise InvalidRequestError("identifier is required")
        if identifier.startswith("did:"):
            did = identifier
            doc = await resolve_doc(did, refresh)
            claimed = _claimed_handle(doc, did)
            handle = claimed if claimed and await did_of_handle(claimed, refresh) == did else None
        else:
            try:
                wanted = normalize_handle(identifier)
            except InvalidSyntax:
                raise InvalidRequestError("Invalid handle", "InvalidHandle") from None
            found = await did_of_handle(wanted, refresh)
            if found is None:
                raise InvalidRequestError(f"Unable to resolve handle: {wanted}", "HandleNotFound")
            did = found
            doc = await resolve_doc(did, refresh)
            handle = wanted if _claimed_handle(doc, did) == wanted else None
        return {"did": did, "handle": handle or HANDLE_INVALID, "didDoc": doc}

    @router.query("com.atproto.identity.resolveDid")
    async def resolve_did(req: XRPCRequest) -> dict[str, Any]:
        did = req.params.get("did")
        if not isinstance(did, str):
            raise InvalidRequestError("did is required")
        return {"didDoc": await resolve_doc(did, False)}

    @router.query("com.atproto.identity.resolveIdentity")
    async def resolve_identity_route(req: XRPCRequest) -> dict[str, Any]:
        return await resolve_identity(req.params.get("identifier"), False)

    @router.procedure("com.atproto.identity.refreshIdentity", auth=auth.access_standard)
    async def refresh_identity(req: XRPCRequest) -> dict[str, Any]:
        return await resolve_identity(req.body.get("identifier"), True)


def _claimed_handle(doc: dict[str, Any], did: str) -> str | None:
    try:
        return parse_did_doc(doc, did).handle
    except ValueError:
        return None
