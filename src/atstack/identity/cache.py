"""A bounded TTL cache with in-flight coalescing, for DID and handle resolutions.

Checklist §9: "Cache resolutions". A relay resolves the same DID for every event of a new account at once,
so concurrent misses for one key share a single lookup instead of each making a request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class _LeaderCancelled(Exception):
    pass


class TTLCache(Generic[K, V]):
    """Least-recently-used entries beyond ``max_entries`` are dropped; entries expire after ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        stored_at, value = found
        if self.clock() - stored_at > self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self.clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]], *, refresh: bool = False) -> V:
        """The cached value, or the result of ``load()`` (shared by concurrent callers, then cached).

        ``refresh`` skips the cached value but still joins a lookup already under way.
        """
        if not refresh:
            cached = self.get(key)
            if cached is not None:
                return cached
        while (pending := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except _LeaderCancelled:
                continue  # the caller doing the lookup went away; one of the waiters takes over
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(_LeaderCancelled() if isinstance(exc, asyncio.CancelledError) else exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            self.put(key, value)
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]
