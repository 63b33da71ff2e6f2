"""Admin endpoints (HTTP Basic ``admin:<admin password>``) and the admin page.

Plain JSON routes under ``/admin/`` (not XRPC: the relay's admin API is its own, as in Bluesky's relay):

* ``GET /admin/`` — the admin page (hosts with status, event rate, cursor; forms for the actions below);
* ``GET /admin/hosts`` — ``{"hosts": [...]}`` with live figures; ``GET /admin/consumers``;
* ``POST /admin/hosts/requestCrawl`` ``{hostname}`` — subscribe, bypassing the new-host cap and the
  reachability check; ``POST /admin/hosts/ban`` / ``unban`` ``{hostname}``;
* ``POST /admin/hosts/limits`` ``{hostname, accountLimit?, eventsPerSecond?}`` (null or absent: default);
* ``POST /admin/repos/takedown`` / ``restore`` ``{did}`` — emits an ``#account`` event; ``GET
  /admin/repos?did=``.

Without a configured admin password every admin route answers 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from atstack.core.syntax import is_valid_did
from atstack.relay.admin_page import ADMIN_PAGE
from atstack.relay.context import RelayContext
from atstack.relay.host import InvalidHost
from atstack.relay.slurper import HostBanned
from atstack.xrpc.errors import AuthRequiredError, InvalidRequestError, NotFoundError

__all__ = ["register"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CHALLENGE = 'Basic realm="atstack relay admin", charset="UTF-8"'


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def register(app: web.Application, ctx: RelayContext) -> None:
    def check(request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = ctx.config.admin_password
        if scheme.lower() != "basic" or not expected:
            raise AuthRequiredError("admin authentication required", www_authenticate=_CHALLENGE)
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthRequiredError("malformed Basic credentials", www_authenticate=_CHALLENGE) from None
        if user != "admin" or not hmac.compare_digest(password.encode(), expected.encode()):
            raise AuthRequiredError("wrong admin credentials", www_authenticate=_CHALLENGE)

    def admin(fn: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            check(request)
            return await fn(request)

        return wrapped

    async def body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            data = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise InvalidRequestError("body must be JSON") from None
        if not isinstance(data, dict):
            raise InvalidRequestError("body must be a JSON object")
        return data

    def field(data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidRequestError(f"{name} is required")
        return value

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=ADMIN_PAGE, content_type="text/html")

    async def hosts(request: web.Request) -> web.Response:
        return _json({"hosts": ctx.slurper.summaries()})

    async def consumers(request: web.Request) -> web.Response:
        hub = ctx.hub
        return _json(
            {
                "subscribers": hub.subscriber_count,
                "live": hub.live_subscriber_count,
                "lastSeq": hub.last_published,
            }
        )

    async def crawl(request: web.Request) -> web.Response:
        hostname = field(await body(request), "hostname")
        try:
            host = await ctx.slurper.request_crawl(hostname, admin=True, check=False)
        except InvalidHost as exc:
            raise InvalidRequestError(str(exc)) from None
        except HostBanned:
            raise InvalidRequestError("Host is banned", "HostBanned") from None
        return _json(host.summary())

    async def ban(request: web.Request) -> web.Response:
        hostname = field(await body(request), "hostname")
        try:
            host = await ctx.slurper.ban(hostname)
        except InvalidHost as exc:
            raise InvalidRequestError(str(exc)) from None
        return _json(host.summary())

    async def unban(request: web.Request) -> web.Response:
        hostname = field(await body(request), "hostname")
        try:
            host = await ctx.slurper.unban(hostname)
        except (KeyError, InvalidHost):
            raise NotFoundError(f"unknown host {hostname}", "HostNotFound") from None
        return _json(host.summary())

    def optional_number(data: dict[str, Any], name: str, kind: type) -> Any:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidRequestError(f"{name} must be a non-negative number or null")
        return kind(value)

    async def limits(request: web.Request) -> web.Response:
        data = await body(request)
        hostname = field(data, "hostname")
        host = ctx.slurper.get(hostname)
        if host is None:
            raise NotFoundError(f"unknown host {hostname}", "HostNotFound")
        account_limit = optional_number(data, "accountLimit", int)
        rate = optional_number(data, "eventsPerSecond", float)
        await ctx.slurper.set_limits(host, account_limit, rate)
        return _json(host.summary())

    def did_of(data: dict[str, Any]) -> str:
        did = field(data, "did")
        if not is_valid_did(did):
            raise InvalidRequestError(f"invalid DID {did[:100]!r}")
        return did

    async def takedown(request: web.Request) -> web.Response:
        acc = await ctx.ingest.set_takedown(did_of(await body(request)), True)
        return _json({"did": acc.did, "active": acc.active, "status": acc.public_status})

    async def restore(request: web.Request) -> web.Response:
        acc = await ctx.ingest.set_takedown(did_of(await body(request)), False)
        return _json({"did": acc.did, "active": acc.active, "status": acc.public_status})

    async def repo(request: web.Request) -> web.Response:
        did = did_of(dict(request.query))
        acc = await ctx.ingest.get_account(did)
        if acc is None:
            raise NotFoundError(f"unknown repo {did}", "RepoNotFound")
        host = ctx.slurper.by_id.get(acc.host_id) if acc.host_id is not None else None
        return _json(
            {
                "did": acc.did,
                "host": host.hostname if host is not None else None,
                "active": acc.active,
                "status": acc.status,
                "upstreamStatus": acc.upstream_status,
                "rev": acc.rev,
                "commit": acc.commit_cid.encode() if acc.commit_cid is not None else None,
                "desynchronized": acc.desynchronized,
            }
        )

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/admin/")

    app.router.add_get("/admin", redirect)
    app.router.add_get("/admin/", admin(page))
    app.router.add_get("/admin/hosts", admin(hosts))
    app.router.add_get("/admin/consumers", admin(consumers))
    app.router.add_get("/admin/repos", admin(repo))
    app.router.add_post("/admin/hosts/requestCrawl", admin(crawl))
    app.router.add_post("/admin/hosts/ban", admin(ban))
    app.router.add_post("/admin/hosts/unban", admin(unban))
    app.router.add_post("/admin/hosts/limits", admin(limits))
    app.router.add_post("/admin/repos/takedown", admin(takedown))
    app.router.add_post("/admin/repos/restore", admin(restore))
