"""Rate limits: fixed windows per key, the RateLimit-* headers, 429 with Retry-After, tightest-limit choice."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from atstack.xrpc import RateLimiter, RouteRateLimit, XRPCRequest, XRPCRouter
from atstack.xrpc.errors import RateLimitExceededError
from atstack.xrpc.ratelimit import WRITE_POINTS, apply_rate_limits, global_ip_limit, repo_write_limits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_fixed_window_counts_points_and_resets() -> None:
    clock = Clock()
    limiter = RateLimiter("t", 10, 60, clock=clock)
    first = limiter.consume("k", 3)
    assert (first.remaining, first.exceeded, first.window, first.reset_at) == (7, False, 60, clock.now + 60)
    assert limiter.consume("k", 7).remaining == 0
    over = limiter.consume("k", 1)
    assert over.exceeded and over.remaining == 0
    assert over.retry_after == pytest.approx(60)
    assert not limiter.consume("other").exceeded, "keys are independent"
    clock.now += 30
    assert limiter.consume("k").exceeded, "refused points still count within the window"
    clock.now += 30
    fresh = limiter.consume("k")
    assert not fresh.exceeded and fresh.remaining == 9


def test_expired_keys_are_swept() -> None:
    clock = Clock()
    limiter = RateLimiter("t", 5, 10, clock=clock)
    for i in range(1000):
        limiter.consume(f"ip-{i}")
    assert len(limiter) == 1000
    clock.now += 11
    limiter.consume("late")
    assert len(limiter) == 1


def test_headers_follow_the_reference_shape() -> None:
    clock = Clock()
    status = RateLimiter("t", 3000, 300, clock=clock).consume("1.2.3.4")
    assert status.headers() == {
        "RateLimit-Limit": "3000",
        "RateLimit-Remaining": "2999",
        "RateLimit-Reset": str(int(clock.now + 300)),
        "RateLimit-Policy": "3000;w=300",
    }


def test_apply_reports_tightest_and_raises_with_retry_after() -> None:
    class Req:
        ip = "1.2.3.4"
        auth = "did:plc:alice"

    hourly = RouteRateLimit(RateLimiter("h", 100, 3600), key=lambda r: r.auth, points=WRITE_POINTS["create"])
    daily = RouteRateLimit(RateLimiter("d", 1000, 86400), key=lambda r: r.auth, points=WRITE_POINTS["create"])
    headers = apply_rate_limits([daily, hourly], Req())
    assert headers["RateLimit-Limit"] == "100" and headers["RateLimit-Remaining"] == "97"
    skip = RouteRateLimit(RateLimiter("s", 1, 10), key=lambda r: None)
    assert apply_rate_limits([skip, skip], Req()) == {}
    for _ in range(32):
        apply_rate_limits([hourly], Req())
    with pytest.raises(RateLimitExceededError) as info:
        apply_rate_limits([daily, hourly], Req())
    err = info.value
    assert err.status == 429 and err.error == "RateLimitExceeded"
    assert err.headers["RateLimit-Limit"] == "100" and err.headers["RateLimit-Remaining"] == "0"
    assert 3590 <= int(err.headers["Retry-After"]) <= 3600


def test_reference_defaults() -> None:
    rule = global_ip_limit()
    assert (rule.limiter.limit, rule.limiter.window) == (3000, 300)
    hour, day = repo_write_limits(lambda r: r.auth, 3)
    assert (hour.limiter.limit, hour.limiter.window, day.limiter.limit, day.limiter.window) == (
        5000,
        3600,
        35000,
        86400,
    )


async def test_rate_limits_over_http(serve, http) -> None:
    router = XRPCRouter("test", global_rate_limits=[RouteRateLimit(RateLimiter("global", 100, 300))])
    writes = RouteRateLimit(
        RateLimiter("writes", 5, 3600), key=lambda r: r.auth, points=lambda r: len(r.body["writes"])
    )

    async def auth(req: XRPCRequest) -> str:
        return req.headers["X-User"]

    @router.procedure("io.example.write", auth=auth, rate_limits=[writes])
    async def write(req: XRPCRequest) -> dict[str, Any]:
        return {"ok": True}

    @router.query("io.example.read")
    async def read(req: XRPCRequest) -> dict[str, Any]:
        return {}

    base = await serve(router.create_app())
    async with http.get(f"{base}/xrpc/io.example.read") as r:
        assert r.status == 200
        assert r.headers["RateLimit-Limit"] == "100"
        assert r.headers["RateLimit-Remaining"] == "99"
        assert r.headers["RateLimit-Policy"] == "100;w=300"
        assert abs(int(r.headers["RateLimit-Reset"]) - (time.time() + 300)) < 5
    url = f"{base}/xrpc/io.example.write"
    async with http.post(url, json={"writes": [1, 2, 3]}, headers={"X-User": "alice"}) as r:
        assert r.status == 200
        assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == ("5", "2")
    async with http.post(url, json={"writes": [1, 2, 3]}, headers={"X-User": "alice"}) as r:
        assert r.status == 429
        assert orjson.loads(await r.read()) == {
            "error": "RateLimitExceeded",
            "message": "Rate Limit Exceeded",
        }
        assert r.headers["RateLimit-Remaining"] == "0"
        assert r.headers["RateLimit-Policy"] == "5;w=3600"
        assert int(r.headers["Retry-After"]) > 3500
        assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    async with http.post(url, json={"writes": [1]}, headers={"X-User": "bob"}) as r:
        assert r.status == 200, "limits are per account"
    router_small = XRPCRouter("test", global_rate_limits=[global_ip_limit(limit=2)])

    @router_small.query("io.example.read")
    async def read2(req: XRPCRequest) -> dict[str, Any]:
        return {}

    base2 = await serve(router_small.create_app())
    statuses = []
    for _ in range(3):
        async with http.get(f"{base2}/xrpc/io.example.read") as r:
            statuses.append(r.status)
    async with http.get(f"{base2}/xrpc/io.example.unknownThing") as r:
        statuses.append(r.status)
    assert statuses == [200, 200, 429, 429], "the global limit applies before routing, unknown NSIDs too"
