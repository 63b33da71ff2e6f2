"""In-memory state of upstream hosts and accounts (the rows of :mod:`.store`, plus live counters).

* :class:`Account` — one DID: host, local moderation status, upstream status, last accepted commit; the
  ingest path mutates it and hands it to the sequencer, which writes it with the batch of its event.
* :class:`HostState` — one upstream: status, limits, the cursor tracker, rate limiter and live figures.
* :class:`CursorTracker` — events of a host finish out of order (parallel across DIDs); the cursor we may
  persist is the highest seq below which *every* event has finished.
* :class:`TokenBucket` — the per-host event rate limit; waiting on it is back-pressure, not a drop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from atstack.core.cid import CID
from atstack.relay.store.accounts import AccountRow
from atstack.relay.store.hosts import HostRow
from atstack.relay.validate import RepoState

__all__ = ["Account", "CursorTracker", "HostState", "TokenBucket"]

HOST_STATUSES = ("active", "idle", "offline", "throttled", "banned")


@dataclass(slots=True)
class Account:
    did: str
    host_id: int | None
    created_at: str
    status: str | None = None  # local: None or "takendown"
    upstream_status: str | None = None  # None while active at its host
    rev: str | None = None
    commit_cid: CID | None = None
    data_cid: CID | None = None
    desynchronized: bool = False
    last_resync: float = field(default=float("-inf"))

    @classmethod
    def from_row(cls, row: AccountRow) -> Account:
        return cls(
            did=row.did,
            host_id=row.host_id,
            created_at=row.created_at,
            status=row.status,
            upstream_status=row.upstream_status,
            rev=row.rev,
            commit_cid=CID(row.commit_cid) if row.commit_cid is not None else None,
            data_cid=CID(row.data_cid) if row.data_cid is not None else None,
            desynchronized=bool(row.desynchronized),
        )

    def row(self) -> tuple:
        return (
            self.did,
            self.host_id,
            self.status,
            self.upstream_status,
            self.rev,
            self.commit_cid.cid_bytes if self.commit_cid is not None else None,
            self.data_cid.cid_bytes if self.data_cid is not None else None,
            int(self.desynchronized),
            self.created_at,
        )

    @property
    def active(self) -> bool:
        return self.status is None and self.upstream_status is None

    @property
    def public_status(self) -> str | None:
        """The status we report: our own moderation first, then the host's."""
        return self.status or self.upstream_status

    def repo_state(self) -> RepoState:
        return RepoState(self.rev, self.commit_cid, self.data_cid)


class CursorTracker:
    """Upstream seqs in flight, in arrival order; ``cursor`` = highest seq with nothing unfinished below."""

    __slots__ = ("_done", "_idle", "_inflight", "cursor")

    def __init__(self, cursor: int | None) -> None:
        self.cursor = cursor
        self._inflight: deque[int] = deque()
        self._done: set[int] = set()
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._inflight)

    def begin(self, seq: int) -> None:
        self._inflight.append(seq)

    def finish(self, seq: int) -> int | None:
        """Mark ``seq`` finished; returns the new cursor when it advanced."""
        inflight = self._inflight
        if inflight and inflight[0] == seq:
            inflight.popleft()
            advanced = seq
        else:
            self._done.add(seq)
            advanced = None
        done = self._done
        while inflight and inflight[0] in done:
            advanced = inflight.popleft()
            done.discard(advanced)
        if advanced is not None:
            self.cursor = advanced
        if not inflight and self._idle is not None:
            self._idle.set()
        return advanced

    async def wait_idle(self) -> None:
        while self._inflight:
            self._idle = asyncio.Event()
            await self._idle.wait()


class TokenBucket:
    """``rate`` events per second with a burst of one second's worth."""

    __slots__ = ("_stamp", "_tokens", "rate", "throttled_at")

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._tokens = rate or 0.0
        self._stamp = time.monotonic()
        self.throttled_at = float("-inf")

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate
        self._tokens = min(self._tokens, rate or 0.0)

    def take_now(self) -> float:
        """Take a token; returns how long to wait before using it (0.0: at once). Synchronous, so the
        steady state costs the caller no coroutine."""
        rate = self.rate
        if rate is None:
            return 0.0
        now = time.monotonic()
        tokens = min(rate, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        self._tokens = tokens - 1.0
        if tokens >= 1.0:
            return 0.0
        self.throttled_at = now
        return (1.0 - tokens) / rate

    @property
    def throttled(self) -> bool:
        return time.monotonic() - self.throttled_at < 5.0


@dataclass(slots=True)
class HostState:
    id: int
    hostname: str
    status: str
    created_at: str
    account_limit: int | None  # None: no limit
    events_per_second: float | None
    configured_account_limit: int | None = None  # what the admin set (None: the default)
    configured_rate: float | None = None
    account_count: int = 0
    tracker: CursorTracker = field(default_factory=lambda: CursorTracker(None))
    limiter: TokenBucket = field(default_factory=lambda: TokenBucket(None))
    last_seen_seq: int | None = None  # highest seq read on the current connection
    connected: bool = False
    failures: int = 0
    events_received: int = 0
    last_event_at: float | None = None
    rate: float = 0.0  # events/s, exponentially smoothed
    _rate_window_start: float = field(default_factory=time.monotonic)
    _rate_window_count: int = 0
    task: asyncio.Task[None] | None = None

    @classmethod
    def from_row(
        cls, row: HostRow, default_account_limit: int | None, default_rate: float | None
    ) -> HostState:
        account_limit = row.account_limit if row.account_limit is not None else default_account_limit
        rate = row.events_per_second if row.events_per_second is not None else default_rate
        host = cls(
            id=row.id,
            hostname=row.hostname,
            status=row.status,
            created_at=row.created_at,
            account_limit=account_limit,
            events_per_second=rate,
            configured_account_limit=row.account_limit,
            configured_rate=row.events_per_second,
        )
        host.tracker = CursorTracker(row.last_seq)
        host.limiter = TokenBucket(rate)
        return host

    @property
    def cursor(self) -> int | None:
        return self.tracker.cursor

    @property
    def reported_status(self) -> str:
        if self.status == "active" and self.limiter.throttled:
            return "throttled"
        return self.status

    def count_event(self) -> None:
        self.events_received += 1
        self._rate_window_count += 1
        now = time.monotonic()
        self.last_event_at = now
        elapsed = now - self._rate_window_start
        if elapsed >= 5.0:
            self.rate = self._rate_window_count / elapsed
            self._rate_window_start, self._rate_window_count = now, 0

    def current_rate(self) -> float:
        """Smoothed events/s; decays to zero when the host falls silent."""
        elapsed = time.monotonic() - self._rate_window_start
        if elapsed >= 10.0:
            return self._rate_window_count / elapsed
        return self.rate

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "hostname": self.hostname,
            "status": self.reported_status,
            "seq": self.cursor,
            "accountCount": self.account_count,
            "accountLimit": self.account_limit,
            "eventsPerSecondLimit": self.events_per_second,
            "connected": self.connected,
            "eventsReceived": self.events_received,
            "eventsPerSecond": round(self.current_rate(), 2),
            "failures": self.failures,
            "createdAt": self.created_at,
        }
