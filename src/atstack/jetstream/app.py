"""Wiring of ``atstack jetstream``: store, upstream consumer, fan-out, endpoints, retention, lifecycle.

``create_app(config)`` returns the aiohttp application. Routes: ``GET /subscribe`` (Jetstream v1 WebSocket),
``/xrpc/network.bsky.jetstream.subscribeEvents`` (v2), ``GET /`` (status page), ``GET /status`` (the same
figures as JSON), ``/xrpc/_health`` and ``/metrics`` (from the XRPC router).

Startup opens the store, resumes the converter's clock and the fan-out after the newest stored event,
starts the upstream consumer (when ``config.upstream`` is set) and the retention job. Shutdown closes
every subscriber (going away), stores what the consumer still holds, then closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from atstack import __version__
from atstack.jetstream.config import JetstreamConfig
from atstack.jetstream.consumer import UpstreamConsumer
from atstack.jetstream.convert import Converter
from atstack.jetstream.fanout import Fanout
from atstack.jetstream.handlers import SubscribeEndpoint, format_time_us, status_page
from atstack.jetstream.metrics import JetstreamMetrics
from atstack.jetstream.store import EventStore
from atstack.jetstream.v2 import SubscribeEventsEndpoint
from atstack.xrpc.server import XRPCRouter

__all__ = ["JETSTREAM", "JetstreamService", "create_app"]

log = logging.getLogger("atstack.jetstream")


class JetstreamService:
    """Everything one running Jetstream holds (reachable from the app as ``app[JETSTREAM]``)."""

    def __init__(self, config: JetstreamConfig, metrics: JetstreamMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.store = EventStore(config.store_path, map_size=config.store_map_size, sync=config.store_sync)
        self.converter = Converter(config.clock)
        self.fanout = Fanout(
            self.store, metrics, max_outbox_bytes=config.max_outbox_bytes, clock=config.clock
        )
        self.endpoint = SubscribeEndpoint(
            self.fanout,
            metrics,
            heartbeat=config.heartbeat,
            max_subscribers=config.max_subscribers,
            retention_us=config.retention_us,
        )
        self.v2 = SubscribeEventsEndpoint(
            self.fanout, metrics, heartbeat=config.heartbeat, retention_us=config.retention_us
        )
        self.consumer: UpstreamConsumer | None = None
        self._retention: asyncio.Task[None] | None = None
        self.ready = False

    async def start(self) -> None:
        await self.store.open()
        latest = self.store.latest_time_us or 0
        self.converter.last_time_us = latest
        self.fanout.last_published = latest
        await self.trim()
        if self.config.upstream:
            self.consumer = UpstreamConsumer(
                self.config.upstream,
                self.store,
                self.fanout,
                self.converter,
                self.metrics,
                flush_interval=self.config.flush_interval,
            )
            self.consumer.start()
        self._retention = asyncio.create_task(self._retention_loop(), name="jetstream-retention")
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        if self.consumer is not None:
            await self.consumer.stop()
        await self.store.close()

    async def close_streams(self) -> None:
        await self.fanout.close_all()
        await self.v2.close_all()

    async def trim(self) -> int:
        """Delete what fell out of the retention window; returns how many events went."""
        cutoff = self.config.clock() - self.config.retention_us
        oldest = self.store.oldest_time_us
        removed = 0
        if oldest is not None and oldest < cutoff:
            removed = await self.store.trim_before(cutoff)
            self.metrics.trimmed.inc(removed)
            log.info("retention trimmed %d events", removed, extra={"before_time_us": cutoff})
        if self.store.oldest_time_us is not None:
            self.metrics.oldest.set(self.store.oldest_time_us)
        return removed

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.trim_interval)
            try:
                await self.trim()
            except Exception:
                log.exception("retention failed")

    async def health_check(self) -> None:
        if not self.ready:
            raise RuntimeError("jetstream is not ready")

    def status(self) -> dict[str, Any]:
        consumer = self.consumer
        return {
            "version": __version__,
            "upstream": consumer.url if consumer else None,
            "upstream_connected": bool(consumer and consumer.connected),
            "upstream_cursor": self.store.upstream_cursor,
            "events_stored": self.store.count_sync() if self.ready else None,
            "oldest_time_us": self.store.oldest_time_us,
            "oldest": format_time_us(self.store.oldest_time_us),
            "latest_time_us": self.store.latest_time_us,
            "latest": format_time_us(self.store.latest_time_us),
            "retention_hours": self.config.retention_hours,
            "subscribers": self.fanout.subscriber_count + self.v2.subscriber_count,
            "store_bytes": self.store.disk_bytes() if self.ready else None,
        }


JETSTREAM: web.AppKey[JetstreamService] = web.AppKey("atstack.jetstream.service", JetstreamService)

# The reference (Go net/http) reads up to 1 MB of request line and headers. aiohttp's default request-line
# limit (8190 bytes) refuses a query string with more than ~180 ``wantedDids``, far below the 10,000 the
# v1 wire allows (10,000 did:plc parameters are ~450 KB).
MAX_REQUEST_LINE = 1 << 20


def create_app(config: JetstreamConfig) -> web.Application:
    """The Jetstream service as an aiohttp app; ``config.data_dir`` is created on startup if missing."""
    holder: list[JetstreamService] = []

    async def health() -> None:
        await holder[0].health_check()

    router = XRPCRouter("jetstream", health_check=health)
    metrics = JetstreamMetrics(router.metrics.registry)
    service = JetstreamService(config, metrics)
    holder.append(service)
    service.v2.mount(router)
    router.add_shutdown_hook(service.close_streams)
    # 10,000 wantedDids make a request line far longer than aiohttp's default limit of 8,190 bytes.
    app = router.create_app(handler_args={"max_line_size": MAX_REQUEST_LINE})
    app[JETSTREAM] = service
    app.router.add_route("*", "/subscribe", service.endpoint.subscribe)

    async def index(request: web.Request) -> web.Response:
        return status_page(service.status())

    async def status_json(request: web.Request) -> web.Response:
        return web.json_response(service.status())

    app.router.add_get("/", index)
    app.router.add_get("/status", status_json)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
