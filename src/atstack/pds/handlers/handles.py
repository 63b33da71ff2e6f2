"""Handle resolution as a PDS serves it: ``/.well-known/atproto-did`` and ``resolveHandle``.

Spec: atproto.com/specs/handle ("Handle Resolution"), checklist §9. ``GET /.well-known/atproto-did``
answers ``text/plain`` with the DID of the hosted account whose handle is the request's ``Host`` (404
otherwise). ``com.atproto.identity.resolveHandle`` answers hosted handles from the database and resolves
any other handle over DNS/HTTPS (:class:`atstack.identity.HandleResolver`), 400 ``HandleNotFound`` when
nothing claims it. (The rest of ``com.atproto.identity`` lives in its own module.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from atstack.core.syntax import InvalidSyntax, normalize_handle
from atstack.identity import IdentityError
from atstack.pds.store import accounts
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["register"]


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    async def hosted_did(handle: str) -> str | None:
        account = await ctx.db.read(lambda conn: accounts.get_by_handle(conn, handle))
        if account is None or account.status == "takendown":
            return None
        return account.did

    @router.query("com.atproto.identity.resolveHandle")
    async def resolve_handle(req: XRPCRequest) -> dict[str, Any]:
        raw = req.params.get("handle")
        if not isinstance(raw, str):
            raise InvalidRequestError("handle is required")
        try:
            handle = normalize_handle(raw)
        except InvalidSyntax:
            raise InvalidRequestError("Invalid handle", "InvalidHandle") from None
        did = await hosted_did(handle)
        if did is None and not ctx.accounts.is_service_handle(handle):
            try:
                did = await ctx.handle_resolver.resolve(handle)
            except IdentityError:
                did = None
        if did is None:
            raise InvalidRequestError("Unable to resolve handle", "HandleNotFound")
        return {"did": did}

    async def well_known_atproto_did(request: web.Request) -> web.Response:
        host = (request.host or "").split(":", 1)[0].lower()
        did = await hosted_did(host) if host else None
        if did is None:
            return web.Response(status=404, text="User not found")
        return web.Response(text=did, content_type="text/plain")

    ctx.add_http_route("GET", "/.well-known/atproto-did", well_known_atproto_did)
