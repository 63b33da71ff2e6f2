"""Telling relays we exist: ``com.atproto.sync.requestCrawl {hostname}`` to each configured crawler.

Best effort, as the reference does: at startup and on a write at most every 20 minutes, in the background;
a failure is logged and forgotten (relays also discover hosts on their own). The ``hostname`` sent is our
public URL's host, with its port when it has one (a development relay dials ``localhost:<port>``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
import orjson

__all__ = ["NOTIFY_INTERVAL", "Crawlers"]

log = logging.getLogger("atstack.pds.crawlers")

NOTIFY_INTERVAL = 20 * 60.0


class Crawlers:
    def __init__(
        self, crawlers: tuple[str, ...], public_url: Callable[[], str], clock: Callable[[], float]
    ) -> None:
        self.crawlers = tuple(c.rstrip("/") for c in crawlers)
        self.public_url = public_url
        self.clock = clock
        self.session: aiohttp.ClientSession | None = None
        self._last = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self.requests_sent = 0

    @property
    def hostname(self) -> str:
        return urlsplit(self.public_url()).netloc

    def notify_of_update(self) -> None:
        now = self.clock()
        if not self.crawlers or now - self._last < NOTIFY_INTERVAL:
            return
        self._last = now
        for crawler in self.crawlers:
            task = asyncio.ensure_future(self._request(crawler))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def notify_soon(self, delay: float = 0.5) -> None:
        """Notify once the server is listening (a relay that dials back right away should find us)."""
        handle = asyncio.get_running_loop().call_later(delay, self.notify_of_update)
        self._timers.append(handle)

    async def _request(self, crawler: str) -> None:
        if self.session is None:
            return
        url = f"{crawler}/xrpc/com.atproto.sync.requestCrawl"
        try:
            async with self.session.post(
                url,
                data=orjson.dumps({"hostname": self.hostname}),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                self.requests_sent += 1
                if resp.status >= 400:
                    log.warning("requestCrawl to %s answered %d", crawler, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("requestCrawl to %s failed: %s", crawler, exc)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
