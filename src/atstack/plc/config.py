"""Configuration of the did:plc directory service (``atstack plc``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["DEFAULT_PORT", "MAX_BODY_BYTES", "PlcConfig", "utc_now"]

DEFAULT_PORT = 2582
# A valid operation is at most 7500 bytes of DRISL; its JSON is a little larger. Anything past this is
# refused before it is parsed.
MAX_BODY_BYTES = 64 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class PlcConfig:
    """``clock`` is when an operation arrives: the timestamp recorded for it and the reference point of the
    72-hour recovery window. Tests pass a clock they can move; it must return timezone-aware datetimes.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    clock: Callable[[], datetime] = field(default=utc_now)
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def db_path(self) -> Path:
        return self.data_dir / "plc.sqlite"
