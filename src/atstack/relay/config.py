"""Configuration of the relay (``atstack relay``).

Every field has a flag and an ``ATSTACK_RELAY_*`` environment variable in :mod:`atstack.cli.relay`; the admin
password also reads ``ATSTACK_ADMIN_PASSWORD`` (DESIGN "Command line and ports").

``allow_private_hosts`` is local-development mode: hosts may be ``localhost:<port>`` or private addresses,
are dialled over plain ``ws://`` when they are loopback names or IP literals, and DID resolution may reach
loopback. Off, every upstream and identity fetch goes through the SSRF guard of :mod:`atstack.identity.net`.

``clock`` is the relay's "now" in Unix seconds (the future-rev check, retention, event times); tests pass
one they can move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_PORT", "RelayConfig"]

DEFAULT_PORT = 2584


@dataclass(slots=True)
class RelayConfig:
    """Settings of one relay. Only ``data_dir`` is required."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    plc_url: str = "https://plc.directory"
    admin_password: str | None = None
    crawl: tuple[str, ...] = ()  # hosts subscribed to at start (hostnames or URLs)
    allow_private_hosts: bool = False
    # new hosts: replay the host's whole retained window (cursor 0) or start at its live tip
    backfill_new_hosts: bool = True
    # output log
    retention_hours: float = 72.0
    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "NORMAL"
    checkpoint_interval: float = 5.0  # repo heads and record counts are written this often (see sequencer)
    # upstream hosts
    default_account_limit: int = 100_000
    default_events_per_second: float = 1_000.0
    trusted_hosts: tuple[str, ...] = ()  # exempt from the default limits (higher rate and account cap)
    new_hosts_per_day: int = 1_000
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    max_reconnect_failures: int = 15  # consecutive failures before a host is marked offline
    idle_timeout: float = 6 * 3600.0  # a host silent this long is dropped and marked idle
    # ingest
    workers: int = 128
    max_pending_events: int = 20_000
    future_rev_tolerance: float = 300.0
    max_repo_bytes: int = 512 * 1024 * 1024  # getRepo CAR cap during a resync
    resync_interval: float = 60.0  # at most one resync per repo per this many seconds
    lenient: bool = False  # accept #commit without prevData (no MST inversion possible)
    tune_gc: bool = True  # raise the collector's thresholds for the process (see HACKING.md)
    # output stream
    max_outbox_frames: int = 10_000
    max_outbox_bytes: int = 64 * 1024 * 1024
    max_subscribers: int | None = None
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.crawl = tuple(self.crawl)
        self.trusted_hosts = tuple(h.lower() for h in self.trusted_hosts)
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_pending_events < 1:
            raise ValueError("max_pending_events must be at least 1")
        if self.retention_hours <= 0:
            raise ValueError("retention_hours must be positive")
        if self.checkpoint_interval < 0:
            raise ValueError("checkpoint_interval must not be negative")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "relay.sqlite"

    @property
    def retention_seconds(self) -> float:
        return self.retention_hours * 3600.0
