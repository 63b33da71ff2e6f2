"""The relay's Prometheus metrics, registered on the service's own registry (``GET /metrics``).

Label values are bounded: event types are the five message names, drop reasons a fixed vocabulary of short
words (see :mod:`atstack.relay.validate` and :mod:`atstack.relay.ingest`), never a hostname or a DID — per-host
figures are on the admin page and ``/admin/hosts`` instead.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from atstack.xrpc.loop_metrics import LoopCounter, LoopHistogram
from atstack.xrpc.metrics import XRPCMetrics

__all__ = ["RelayMetrics"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RelayMetrics:
    def __init__(self, base: XRPCMetrics) -> None:
        registry = base.registry
        # Updated for every event: the lock-free loop-only types (atstack.xrpc.loop_metrics).
        self.events_in = LoopCounter(
            "relay_events_received_total", "Frames received from upstream hosts, by type.", ("type",),
            registry=registry,
        )  # fmt: skip
        self.events_dropped = Counter(
            "relay_events_dropped_total", "Upstream events not passed on, by reason.", ("reason",),
            registry=registry,
        )  # fmt: skip
        self.events_accepted = LoopCounter(
            "relay_events_accepted_total", "Upstream events accepted and re-sequenced, by type.", ("type",),
            registry=registry,
        )  # fmt: skip
        self.events_out = Counter(
            "relay_events_published_total", "Events persisted to the output log and published.",
            registry=registry,
        )  # fmt: skip
        self.validation_seconds = LoopHistogram(
            "relay_validation_seconds", "Time to verify one #commit or #sync (signature, MST proof).",
            ("type",), buckets=_FAST, registry=registry,
        )  # fmt: skip
        self.added_latency = LoopHistogram(
            "relay_added_latency_seconds",
            "From receipt of an upstream frame to publication of our re-sequenced event.",
            buckets=_FAST, registry=registry,
        )  # fmt: skip
        self.flush_seconds = Histogram(
            "relay_flush_seconds", "Time to write one batch of the output log.", buckets=_FAST,
            registry=registry,
        )  # fmt: skip
        self.flush_events = Histogram(
            "relay_flush_batch_events", "Events per output-log batch.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000), registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "relay_ingest_queue_depth", "Upstream events waiting in (or being handled by) the ingest queue.",
            registry=registry,
        )  # fmt: skip
        self.output_backlog = Gauge(
            "relay_output_backlog", "Accepted events waiting to be written to the output log.",
            registry=registry,
        )  # fmt: skip
        self.resyncs = Counter(
            "relay_resyncs_total", "Repo resyncs from the host's getRepo, by result.", ("result",),
            registry=registry,
        )  # fmt: skip
        self.connections = Counter(
            "relay_upstream_connections_total", "Upstream connection attempts, by result.", ("result",),
            registry=registry,
        )  # fmt: skip
        self.hosts = Gauge("relay_hosts", "Upstream hosts by status.", ("status",), registry=registry)
        self.hosts_connected = Gauge(
            "relay_hosts_connected", "Upstream hosts with an open subscription.", registry=registry
        )

    def bind_gauges(self, queue_depth: Callable[[], float], backlog: Callable[[], float]) -> None:
        self.queue_depth.set_function(queue_depth)
        self.output_backlog.set_function(backlog)

    def drop(self, reason: str) -> None:
        self.events_dropped.labels(reason).inc()
