"""HTTP + WebSocket plumbing shared by every atstack service (aiohttp on uvloop).

- :mod:`.errors` — :class:`XRPCError` and the generic error names by status;
- :mod:`.server` — :class:`XRPCRouter`: NSID routing, params/body handling, errors, CORS, health, metrics;
- :mod:`.request` — :class:`XRPCRequest` handed to handlers, :class:`XRPCResponse` for non-JSON answers;
- :mod:`.ratelimit` — fixed-window limits with the ``RateLimit-*`` headers;
- :mod:`.stream` — :class:`EventStreamHub`: cursor replay and bounded, pre-encoded fan-out;
- :mod:`.client` — :class:`XRPCClient` for calls between services;
- :mod:`.service` — running apps (uvloop, signals, graceful shutdown) and test servers;
- :mod:`.logs`, :mod:`.metrics` — JSON-lines logging and Prometheus metrics.
"""

from atstack.xrpc.client import XRPCClient, XRPCClientError, XRPCResult
from atstack.xrpc.errors import (
    AuthRequiredError,
    ForbiddenError,
    InternalServerError,
    InvalidRequestError,
    MethodNotImplementedError,
    NotEnoughResourcesError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitExceededError,
    UpstreamFailureError,
    UpstreamTimeoutError,
    XRPCError,
)
from atstack.xrpc.logs import configure_logging
from atstack.xrpc.metrics import XRPCMetrics
from atstack.xrpc.ratelimit import RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest, XRPCResponse
from atstack.xrpc.server import Route, XRPCRouter
from atstack.xrpc.service import ServiceSpec, run_service, serve_apps, start_test_server
from atstack.xrpc.stream import EventLog, EventStreamHub, MemoryEventLog

__all__ = [
    "AuthRequiredError",
    "EventLog",
    "EventStreamHub",
    "ForbiddenError",
    "InternalServerError",
    "InvalidRequestError",
    "MemoryEventLog",
    "MethodNotImplementedError",
    "NotEnoughResourcesError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitExceededError",
    "RateLimiter",
    "Route",
    "RouteRateLimit",
    "ServiceSpec",
    "UpstreamFailureError",
    "UpstreamTimeoutError",
    "XRPCClient",
    "XRPCClientError",
    "XRPCError",
    "XRPCMetrics",
    "XRPCRequest",
    "XRPCResponse",
    "XRPCResult",
    "XRPCRouter",
    "configure_logging",
    "run_service",
    "serve_apps",
    "start_test_server",
]
