"""Prometheus metrics of ``atstack jetstream`` (served with the XRPC ones at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["JetstreamMetrics"]


class JetstreamMetrics:
    """Events in and out, subscribers, bytes sent compressed/uncompressed, lag behind the upstream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_in = Counter(
            "jetstream_events_ingested_total",
            "Events converted and stored, by kind.",
            ("kind",),
            registry=registry,
        )
        self.upstream_frames = Counter(
            "jetstream_upstream_frames_total",
            "Frames read from the upstream subscribeRepos.",
            registry=registry,
        )
        self.upstream_skipped = Counter(
            "jetstream_upstream_skipped_total",
            "Upstream frames or ops skipped, by reason.",
            ("reason",),
            registry=registry,
        )
        self.upstream_connected = Gauge(
            "jetstream_upstream_connected", "1 while the upstream stream is connected.", registry=registry
        )
        self.upstream_seq = Gauge(
            "jetstream_upstream_cursor", "Last upstream seq stored (the persisted cursor).", registry=registry
        )
        self.upstream_lag = Gauge(
            "jetstream_upstream_lag_seconds",
            "Now minus the upstream time of the last stored event.",
            registry=registry,
        )
        self.events_out = Counter(
            "jetstream_events_sent_total",
            "Events queued to subscribers (one per event per subscriber), by encoding.",
            ("encoding",),
            registry=registry,
        )
        self.bytes_out = Counter(
            "jetstream_bytes_sent_total",
            "Payload bytes queued to subscribers as sent on the wire (zstd: compressed), by encoding.",
            ("encoding",),
            registry=registry,
        )
        self.bytes_uncompressed = Counter(
            "jetstream_bytes_sent_uncompressed_total",
            "Uncompressed JSON size of the events sent to zstd subscribers (ratio = this / bytes sent zstd).",
            registry=registry,
        )
        self.subscribers = Gauge(
            "jetstream_subscribers", "Connected subscribers, by endpoint.", ("endpoint",), registry=registry
        )
        self.dropped = Counter(
            "jetstream_subscribers_dropped_total",
            "Subscribers disconnected by the server, by reason.",
            ("reason",),
            registry=registry,
        )
        self.options_updates = Counter(
            "jetstream_options_updates_total",
            "options_update messages, by result.",
            ("result",),
            registry=registry,
        )
        self.trimmed = Counter(
            "jetstream_events_trimmed_total", "Events deleted by retention.", registry=registry
        )
        self.oldest = Gauge(
            "jetstream_oldest_time_us", "time_us of the oldest retained event.", registry=registry
        )
        self.latest = Gauge("jetstream_latest_time_us", "time_us of the newest event.", registry=registry)
