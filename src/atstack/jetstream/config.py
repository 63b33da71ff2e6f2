"""Configuration of ``atstack jetstream``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atstack.jetstream.convert import now_us

__all__ = ["DEFAULT_PORT", "DEFAULT_RETENTION_HOURS", "JetstreamConfig"]

DEFAULT_PORT = 2585
DEFAULT_RETENTION_HOURS = 36.0


@dataclass(slots=True)
class JetstreamConfig:
    """``upstream`` is a ``subscribeRepos`` source (``ws://host:port`` or the full URL); ``None`` serves
    the stored events only. ``clock`` returns unix µs (tests move it)."""

    data_dir: Path
    upstream: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    retention_hours: float = DEFAULT_RETENTION_HOURS
    trim_interval: float = 60.0
    flush_interval: float = 0.02
    max_outbox_bytes: int = 32 * 1024 * 1024
    max_subscribers: int = 10_000
    heartbeat: float | None = 30.0
    store_sync: bool = True
    store_map_size: int = 1 << 36
    clock: Callable[[], int] = field(default=now_us)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "events.lmdb"

    @property
    def retention_us(self) -> int:
        return int(self.retention_hours * 3600 * 1_000_000)
