"""The relay's HTTP surface: one module per namespace (``com.atproto.sync``, admin)."""

from __future__ import annotations

from aiohttp import web

from atstack.relay.context import RelayContext
from atstack.relay.handlers import admin, sync

__all__ = ["register_all"]


def register_all(ctx: RelayContext, app: web.Application) -> None:
    sync.register(ctx.router, ctx)
    admin.register(app, ctx)
