"""Wiring of the PDS: context, routes, startup and shutdown.

``create_app(config)`` builds the :class:`~atstack.pds.context.PdsContext`, lets every handler module
register its routes (:func:`atstack.pds.handlers.register_all`) and returns the aiohttp application. On
startup: data directories, the JWT secret, the database (migrated), the sequencer (with its event-log trim
task) and the ``subscribeRepos`` hub, the HTTP session and identity clients; then relays are asked to crawl
us. On shutdown the event streams close first (router shutdown hook), the background tasks (event-log trim,
blob GC) stop, in-flight writes finish, then the clients and the database close.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from atstack import __version__
from atstack.core.lexicon import Lexicons, load_lexicon_dir
from atstack.identity import DidResolver, HandleResolver, PlcClient
from atstack.lexicons import bundled_lexicons
from atstack.pds.accounts import AccountManager
from atstack.pds.auth import AuthVerifier
from atstack.pds.blob_gc import blob_gc, start_blob_gc
from atstack.pds.blobstore import BlobStore
from atstack.pds.config import PdsConfig
from atstack.pds.context import PdsContext
from atstack.pds.crawlers import Crawlers
from atstack.pds.handlers import register_all
from atstack.pds.repo_writer import RepoWriter
from atstack.pds.sequencer import Sequencer
from atstack.pds.store import MIGRATIONS
from atstack.storage.sqlite import Database
from atstack.xrpc.server import XRPCRouter
from atstack.xrpc.stream import EventStreamHub

__all__ = ["PDS_CONTEXT", "create_app", "find_lexicon_dir", "load_lexicons"]

log = logging.getLogger("atstack.pds")

PDS_CONTEXT: web.AppKey[PdsContext] = web.AppKey("atstack.pds.context", PdsContext)

BANNER = f"""atstack pds {__version__}: an AT Protocol Personal Data Server

Most API routes are under /xrpc/
"""


def find_lexicon_dir(config: PdsConfig) -> Path | None:
    """``config.lexicon_dir``, else ``$ATSTACK_LEXICON_DIR``; None means the lexicons bundled with atstack."""
    if config.lexicon_dir is not None:
        return Path(config.lexicon_dir)
    env = os.environ.get("ATSTACK_LEXICON_DIR")
    return Path(env) if env else None


def load_lexicons(config: PdsConfig) -> Lexicons:
    path = find_lexicon_dir(config)
    return load_lexicon_dir(path) if path is not None else bundled_lexicons()


def create_app(config: PdsConfig, *, lexicons: Lexicons | None = None) -> web.Application:
    """The PDS as an aiohttp application (nothing is opened until it starts)."""
    lexicons = lexicons if lexicons is not None else load_lexicons(config)
    ctx_holder: list[PdsContext] = []

    async def health() -> None:
        await ctx_holder[0].db.read(lambda conn: conn.execute("SELECT 1").fetchone())

    router = XRPCRouter(
        "pds",
        lexicons=lexicons,
        health_check=health,
        json_limit=config.json_limit,
        body_limit=max(config.blob_upload_limit, config.json_limit),
    )
    ctx = PdsContext(config, lexicons, router)
    ctx_holder.append(ctx)
    ctx.auth = AuthVerifier(ctx)
    ctx.blobs = BlobStore(config.blobs_dir)
    ctx.repo = RepoWriter(ctx)
    ctx.accounts = AccountManager(ctx)
    ctx.crawlers = Crawlers(config.crawlers, lambda: config.public_url or "", config.clock)
    register_all(router, ctx)

    app = router.create_app(client_max_size=max(config.blob_upload_limit, config.json_limit) + 1024)
    app[PDS_CONTEXT] = ctx
    app.router.add_get("/", _banner)
    app.router.add_get("/robots.txt", _robots)
    for method, path, handler in ctx.http_routes:
        app.router.add_route(method, path, handler)
    app.cleanup_ctx.append(lambda app: _lifecycle(ctx))
    return app


async def _banner(request: web.Request) -> web.Response:
    return web.Response(text=BANNER)


async def _robots(request: web.Request) -> web.Response:
    return web.Response(text="# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n")


async def _lifecycle(ctx: PdsContext) -> AsyncIterator[None]:
    config = ctx.config
    await asyncio.to_thread(_prepare_dirs, ctx)
    db = await asyncio.to_thread(Database, config.db_path, synchronous="FULL")
    try:
        await db.migrate(MIGRATIONS)
    except BaseException:
        await db.close()
        raise
    ctx._db = db
    sequencer = Sequencer(db, config.clock)
    await sequencer.load()
    sequencer.start_trimming(config.event_retention, config.event_trim_interval)
    hub = EventStreamHub(sequencer, metrics=ctx.router.metrics)
    sequencer.attach(hub)
    ctx._sequencer = sequencer
    ctx._hub = hub
    http = aiohttp.ClientSession()
    ctx._http = http
    ctx._plc = PlcClient(config.plc_url, http)
    ctx._did_resolver = DidResolver(config.plc_url, session=http, allow_private=config.dev)
    ctx._handle_resolver = HandleResolver(allow_private=config.dev)
    ctx.crawlers.session = http
    sequencer.on_committed = ctx.crawlers.notify_of_update
    ctx.crawlers.notify_soon()
    start_blob_gc(ctx)
    log.info(
        "pds ready",
        extra={"service_did": config.service_did, "public_url": config.public_url, "plc": config.plc_url},
    )
    try:
        yield
    finally:
        await sequencer.stop_trimming()
        await blob_gc(ctx).stop()
        await sequencer.wait_idle()
        await ctx.crawlers.close()
        await ctx.handle_resolver.close()
        await ctx.did_resolver.close()
        await http.close()
        await db.close()
        ctx._db = None


def _prepare_dirs(ctx: PdsContext) -> None:
    ctx.config.data_dir.mkdir(parents=True, exist_ok=True)
    ctx.blobs.ensure_dirs()
    ctx.config.resolve_jwt_secret()
