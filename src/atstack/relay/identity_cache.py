"""What the relay needs from a DID's identity, cached: its PDS host, parsed signing key and handle.

Spec: atproto.com/specs/sync (a relay checks that an event's DID is hosted by the sending host and signed
with the DID's current key), checklist §7, §9. Resolution goes through a :class:`DidResolver` (PLC directory
or did:web, with the SSRF guard unless the relay runs in development mode); on top of its cache this keeps
the *parsed* key, so the hot path does no base58 or point decoding.

* Entries live ``ttl`` seconds; failures are remembered for ``negative_ttl`` so a flood of events for an
  unresolvable DID does not become a flood of directory requests (concurrent lookups are coalesced).
* :meth:`refresh` re-resolves now (on ``#identity``, or once before dropping a commit whose signature or
  host does not match), at most once per ``min_refresh_interval`` per DID (counted from the last refresh,
  not the first lookup) — the cap that keeps a host from making us hammer the directory with bad
  signatures; ``force`` (an ``#identity`` event) neither obeys nor counts toward that cap (the per-host
  event rate limit bounds it), and concurrent lookups still coalesce.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from atstack.core.crypto import InvalidKey, PublicKey, parse_multikey
from atstack.core.did_doc import AtprotoIdentity
from atstack.identity.errors import IdentityError
from atstack.relay.host import host_from_endpoint

__all__ = ["DidIdentity", "IdentityCache", "IdentitySource", "IdentityUnavailable"]


class IdentitySource(Protocol):
    async def resolve(self, did: str, *, refresh: bool = False) -> AtprotoIdentity: ...


class IdentityUnavailable(Exception):
    """The DID could not be resolved, or its document lacks a signing key or PDS."""


@dataclass(frozen=True, slots=True)
class DidIdentity:
    did: str
    handle: str | None
    host: str | None  # host key of the PDS endpoint
    key: PublicKey | None
    fetched_at: float


class IdentityCache:
    def __init__(
        self,
        source: IdentitySource,
        *,
        ttl: float = 3600.0,
        negative_ttl: float = 30.0,
        min_refresh_interval: float = 5.0,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.min_refresh_interval = min_refresh_interval
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, DidIdentity] = OrderedDict()
        self._failures: dict[str, tuple[float, str]] = {}
        self._inflight: dict[str, asyncio.Future[DidIdentity]] = {}
        self._refreshed: OrderedDict[str, float] = OrderedDict()
        self.lookups = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, did: str) -> DidIdentity | None:
        """The fresh cached identity, without awaiting (the hot path)."""
        entry = self._entries.get(did)
        if entry is None or self.clock() - entry.fetched_at > self.ttl:
            return None
        return entry

    async def get(self, did: str) -> DidIdentity:
        entry = self.cached(did)
        if entry is not None:
            return entry
        failed = self._failures.get(did)
        if failed is not None and self.clock() - failed[0] < self.negative_ttl:
            raise IdentityUnavailable(failed[1])
        return await self._load(did, refresh=False)

    def can_refresh(self, did: str) -> bool:
        last = self._refreshed.get(did)
        return last is None or self.clock() - last >= self.min_refresh_interval

    async def refresh(self, did: str, *, force: bool = False) -> DidIdentity | None:
        """Re-resolve ``did``; None when refreshed too recently (and not ``force``)."""
        if not force:
            if not self.can_refresh(did):
                return None
            now = self.clock()
            self._refreshed[did] = now
            self._refreshed.move_to_end(did)
            while self._refreshed and now - next(iter(self._refreshed.values())) > self.min_refresh_interval:
                self._refreshed.popitem(last=False)
        self._failures.pop(did, None)
        return await self._load(did, refresh=True)

    def invalidate(self, did: str) -> None:
        self._entries.pop(did, None)
        self._failures.pop(did, None)

    async def _load(self, did: str, *, refresh: bool) -> DidIdentity:
        pending = self._inflight.get(did)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DidIdentity] = asyncio.get_running_loop().create_future()
        self._inflight[did] = future
        try:
            entry = await self._fetch(did, refresh)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                future.set_exception(exc)
                future.exception()
            else:
                future.cancel()
            raise
        else:
            future.set_result(entry)
            return entry
        finally:
            del self._inflight[did]

    async def _fetch(self, did: str, refresh: bool) -> DidIdentity:
        self.lookups += 1
        try:
            ident = await self.source.resolve(did, refresh=refresh)
        except IdentityError as exc:
            reason = f"resolving {did}: {exc}"
            self._failures[did] = (self.clock(), reason)
            raise IdentityUnavailable(reason) from None
        key: PublicKey | None = None
        if ident.signing_key is not None:
            try:
                key = parse_multikey(ident.signing_key)
            except InvalidKey:
                key = None
        entry = DidIdentity(did, ident.handle, host_from_endpoint(ident.pds_endpoint), key, self.clock())
        self._entries[did] = entry
        self._entries.move_to_end(did)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._failures.pop(did, None)
        return entry
