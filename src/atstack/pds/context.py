"""``PdsContext``: everything a handler needs, built by :func:`atstack.pds.app.create_app`.

Handlers receive the context in ``register(router, ctx)`` and use it at request time. Parts that need the
event loop or open files (database, HTTP session, identity clients, sequencer, event hub) are set when the
app starts; reading one before that raises ``RuntimeError``.

* ``db`` — the one SQLite :class:`~atstack.storage.sqlite.Database`; SQL lives in :mod:`atstack.pds.store`;
* ``auth`` — :class:`~atstack.pds.auth.AuthVerifier`: tokens and route auth hooks;
* ``repo`` — :class:`~atstack.pds.repo_writer.RepoWriter`: every repo write goes through it;
* ``accounts`` — :class:`~atstack.pds.accounts.AccountManager`: status changes, deletion, identity events;
* ``sequencer`` / ``hub`` — events persisted with their change, then fanned out on ``subscribeRepos``;
* ``blobs`` — :class:`~atstack.pds.blobstore.BlobStore` (files); ``lexicons`` — the loaded schemas;
* ``plc``, ``did_resolver``, ``handle_resolver`` — identity over the wire; ``http`` — the client session;
* ``write_limits`` — the shared per-account repo-write rate limits (routes that write add them);
* :meth:`add_http_route` — non-XRPC routes (``/.well-known/…``) a handler module wants mounted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from atstack.core.lexicon import Lexicons
from atstack.pds.config import PdsConfig
from atstack.storage.sqlite import Database
from atstack.xrpc.ratelimit import RouteRateLimit
from atstack.xrpc.server import XRPCRouter
from atstack.xrpc.stream import EventStreamHub

if TYPE_CHECKING:
    from atstack.identity import DidResolver, HandleResolver, PlcClient
    from atstack.pds.accounts import AccountManager
    from atstack.pds.auth import AuthVerifier
    from atstack.pds.blobstore import BlobStore
    from atstack.pds.crawlers import Crawlers
    from atstack.pds.repo_writer import RepoWriter
    from atstack.pds.sequencer import Sequencer

__all__ = ["PdsContext"]

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PdsContext:
    def __init__(self, config: PdsConfig, lexicons: Lexicons, router: XRPCRouter) -> None:
        self.config = config
        self.clock = config.clock
        self.lexicons = lexicons
        self.router = router
        self.http_routes: list[tuple[str, str, HttpHandler]] = []
        self.write_limits: list[RouteRateLimit] = []
        # built by create_app
        self.auth: AuthVerifier
        self.repo: RepoWriter
        self.accounts: AccountManager
        self.blobs: BlobStore
        self.crawlers: Crawlers
        # set on startup
        self._db: Database | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sequencer: Sequencer | None = None
        self._hub: EventStreamHub | None = None
        self._plc: PlcClient | None = None
        self._did_resolver: DidResolver | None = None
        self._handle_resolver: HandleResolver | None = None
        self.extras: dict[str, Any] = {}  # room for handler modules' own state

    @staticmethod
    def _ready(value: Any, name: str) -> Any:
        if value is None:
            raise RuntimeError(f"the PDS is not started: {name} is not available yet")
        return value

    @property
    def db(self) -> Database:
        return self._ready(self._db, "db")  # type: ignore[no-any-return]

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._ready(self._http, "http")  # type: ignore[no-any-return]

    @property
    def sequencer(self) -> Sequencer:
        return self._ready(self._sequencer, "sequencer")  # type: ignore[no-any-return]

    @property
    def hub(self) -> EventStreamHub:
        return self._ready(self._hub, "hub")  # type: ignore[no-any-return]

    @property
    def plc(self) -> PlcClient:
        return self._ready(self._plc, "plc")  # type: ignore[no-any-return]

    @property
    def did_resolver(self) -> DidResolver:
        return self._ready(self._did_resolver, "did_resolver")  # type: ignore[no-any-return]

    @property
    def handle_resolver(self) -> HandleResolver:
        return self._ready(self._handle_resolver, "handle_resolver")  # type: ignore[no-any-return]

    @property
    def started(self) -> bool:
        return self._db is not None

    def add_http_route(self, method: str, path: str, handler: HttpHandler) -> None:
        """Mount a plain aiohttp route (e.g. ``/.well-known/atproto-did``) on the app."""
        self.http_routes.append((method, path, handler))

    def now(self) -> float:
        return self.clock()
