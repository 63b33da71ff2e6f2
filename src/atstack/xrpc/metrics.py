"""Prometheus metrics for one service, exposed at ``GET /metrics`` (text exposition format).

Each service gets its own :class:`CollectorRegistry` rather than the process-global default, because
``atstack up`` runs several services in one process tree and tests start many apps in one interpreter.
Label values are bounded: the NSID label is the route's NSID, or ``_unknown`` for paths we do not serve, so
a client cannot grow the series set by inventing method names.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["UNKNOWN_NSID", "XRPCMetrics"]

UNKNOWN_NSID = "_unknown"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class XRPCMetrics:
    """The counters every service shares: HTTP requests by NSID and status, event-stream fan-out."""

    def __init__(self, service: str, version: str = "") -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "xrpc_requests_total",
            "XRPC and HTTP requests answered, by NSID (or path), method and status.",
            ("nsid", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "xrpc_request_duration_seconds",
            "Time from request start to response (for subscriptions: connection lifetime).",
            ("nsid",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stream_subscribers = Gauge(
            "stream_subscribers",
            "Event-stream subscribers connected now.",
            ("nsid",),
            registry=self.registry,
        )
        self.stream_frames_sent = Counter(
            "stream_frames_sent_total",
            "Event-stream frames written to subscribers (one per frame per subscriber).",
            ("nsid",),
            registry=self.registry,
        )
        self.stream_consumers_dropped = Counter(
            "stream_consumers_dropped_total",
            "Subscribers disconnected by the server, by reason.",
            ("nsid", "reason"),
            registry=self.registry,
        )
        info = Gauge(
            "atstack_service_info",
            "Service name and version.",
            ("service", "version"),
            registry=self.registry,
        )
        info.labels(service, version).set(1)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, nsid: str, method: str, status: int, seconds: float) -> None:
        # ``labels()`` validates and looks up under a lock on every call; the children are kept per label set
        # (bounded like the series themselves).
        key = (nsid, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(nsid, method, str(status)), self.latency.labels(nsid))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        response = web.Response(body=self.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
