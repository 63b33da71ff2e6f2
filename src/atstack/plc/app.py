"""Wiring of the did:plc directory: storage, routes, health, metrics, lifecycle.

``create_app(config)`` returns the aiohttp application; the database opens on startup and closes on
cleanup. ``/xrpc/_health`` (the atstack contract) and ``/_health`` (the reference path) both check the
database; ``/metrics`` exposes request counters and ``plc_operations_total``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from atstack.plc.config import PlcConfig
from atstack.plc.handlers import PlcHandlers
from atstack.plc.store import PlcStore
from atstack.xrpc.server import XRPCRouter

__all__ = ["PLC_STORE", "create_app"]

PLC_STORE: web.AppKey[PlcStore] = web.AppKey("atstack.plc.store", PlcStore)


def create_app(config: PlcConfig) -> web.Application:
    """The directory as an aiohttp app; on startup ``config.data_dir`` is created if missing."""
    store = PlcStore(config.db_path)
    router = XRPCRouter("plc", health_check=store.health_check)
    app = router.create_app(client_max_size=config.max_body_bytes)
    handlers = PlcHandlers(store, config.clock, registry=router.metrics.registry)
    handlers.register(app.router)
    app[PLC_STORE] = store

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
