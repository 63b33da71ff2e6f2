"""In-memory rate limits with the reference server's headers and 429 answer.

Spec: atproto.com/specs/xrpc ("Rate Limits"), checklist §8. Limits are optional for a server; the
reference PDS applies these, and they are the defaults of the helper constructors below:

* global, per IP: 3000 requests / 5 minutes;
* repo writes, per account: 5000 points / hour and 35,000 points / day, where a create costs 3 points, an
  update 2 and a delete 1 (:data:`WRITE_POINTS`);
* ``createSession``, per account identifier: 30 / 5 minutes and 300 / day.

A :class:`RateLimiter` is a fixed window per key, like the reference's ``rate-limiter-flexible`` memory
store: the window opens at the key's first request and all points spent in it count, including the ones
that were refused (hammering does not earn an earlier reset). Every answer carries ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (Unix time in seconds when the window ends) and
``RateLimit-Policy: <limit>;w=<seconds>``; a refusal is 429 ``RateLimitExceeded`` with ``Retry-After``.
When several limits apply to one request, all of them are charged and the tightest one is reported.

State lives in this process: with several workers each enforces its own share (a Redis-backed limiter can
implement the same ``consume`` later).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from atstack.xrpc.errors import RateLimitExceededError

__all__ = [
    "WRITE_POINTS",
    "RateLimitStatus",
    "RateLimiter",
    "RouteRateLimit",
    "apply_rate_limits",
    "create_session_limits",
    "global_ip_limit",
    "repo_write_limits",
]

WRITE_POINTS = {"create": 3, "update": 2, "delete": 1}


@dataclass(slots=True, frozen=True)
class RateLimitStatus:
    """Where one key stands in one limiter after a request."""

    limit: int
    remaining: int
    reset_at: float  # Unix seconds when the window ends
    window: int  # window length in seconds
    exceeded: bool = False
    retry_after: float = 0.0  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.floor(self.reset_at)),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }


class RateLimiter:
    """A named fixed-window limiter: at most ``limit`` points per ``window`` seconds per key."""

    __slots__ = ("_clock", "_next_sweep", "_windows", "limit", "name", "window")

    def __init__(
        self, name: str, limit: int, window: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        self.name = name
        self.limit = limit
        self.window = window
        self._clock = clock
        # key -> [window start, points consumed]
        self._windows: dict[str, list[float]] = {}
        self._next_sweep = clock() + window

    def consume(self, key: str, points: int = 1) -> RateLimitStatus:
        """Charge ``points`` to ``key`` and report its status (``exceeded`` set when over the limit)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        entry = self._windows.get(key)
        if entry is None or now >= entry[0] + self.window:
            entry = [now, 0.0]
            self._windows[key] = entry
        entry[1] += points
        consumed = int(entry[1])
        return RateLimitStatus(
            limit=self.limit,
            remaining=max(self.limit - consumed, 0),
            reset_at=entry[0] + self.window,
            window=math.ceil(self.window),
            exceeded=consumed > self.limit,
            retry_after=entry[0] + self.window - now,
        )

    def reset(self, key: str) -> None:
        """Forget ``key`` (e.g. after a successful login that should not count against the user)."""
        self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        # drop expired windows once per window length, so idle keys cannot grow memory without bound
        window = self.window
        expired = [k for k, (start, _) in self._windows.items() if now >= start + window]
        for key in expired:
            del self._windows[key]
        self._next_sweep = now + window

    def __len__(self) -> int:
        return len(self._windows)


def _ip_key(request: Any) -> str | None:
    return getattr(request, "ip", None)


@dataclass(slots=True, frozen=True)
class RouteRateLimit:
    """One limiter applied to a route: ``key(request)`` picks the bucket (``None`` = not limited) and
    ``points`` is a number or ``points(request)`` (e.g. by the writes in an ``applyWrites``).

    The request is the route's ``XRPCRequest``, already authenticated and with its input parsed.
    """

    limiter: RateLimiter
    key: Callable[[Any], str | None] = _ip_key
    points: int | Callable[[Any], int] = 1


def apply_rate_limits(limits: Sequence[RouteRateLimit], request: Any) -> dict[str, str]:
    """Charge every limit; return the tightest status's headers or raise 429 with them."""
    tightest: RateLimitStatus | None = None
    exceeded: RateLimitStatus | None = None
    for rule in limits:
        key = rule.key(request)
        if key is None:
            continue
        points = rule.points if isinstance(rule.points, int) else rule.points(request)
        if points < 1:
            continue
        status = rule.limiter.consume(f"{rule.limiter.name}:{key}", points)
        if status.exceeded:
            if exceeded is None or status.retry_after > exceeded.retry_after:
                exceeded = status
        elif tightest is None or status.remaining < tightest.remaining:
            tightest = status
    if exceeded is not None:
        headers = exceeded.headers()
        raise RateLimitExceededError(retry_after=exceeded.retry_after, headers=headers)
    return tightest.headers() if tightest is not None else {}


def global_ip_limit(limit: int = 3000, window: float = 300) -> RouteRateLimit:
    """The reference's global limit: 3000 requests per 5 minutes per client IP."""
    return RouteRateLimit(RateLimiter("global-ip", limit, window))


def repo_write_limits(
    account_key: Callable[[Any], str | None], points: int | Callable[[Any], int]
) -> list[RouteRateLimit]:
    """Repo writes per account: 5000 points/hour and 35,000 points/day (share these between the write
    routes so they draw on one budget)."""
    return [
        RouteRateLimit(RateLimiter("repo-write-hour", 5000, 3600), account_key, points),
        RouteRateLimit(RateLimiter("repo-write-day", 35000, 86400), account_key, points),
    ]


def create_session_limits(identifier_key: Callable[[Any], str | None]) -> list[RouteRateLimit]:
    """``createSession``: 30 per 5 minutes and 300 per day per identifier."""
    return [
        RouteRateLimit(RateLimiter("create-session-5m", 30, 300), identifier_key),
        RouteRateLimit(RateLimiter("create-session-day", 300, 86400), identifier_key),
    ]
