"""Structured logs: one JSON object per line on stderr.

Every service logs the same shape so one ``jq`` line reads any of them: ``ts`` (RFC 3339 UTC with
milliseconds), ``level``, ``service``, ``logger``, ``msg`` and any extra fields passed through the standard
``logging`` ``extra=`` mapping; exceptions add ``exc`` with the formatted traceback. The access log is one
line per HTTP request (``method``, ``path``, ``nsid``, ``status``, ``ms``) on the ``atstack.access`` logger.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

import orjson

__all__ = ["ACCESS_LOGGER", "JSONFormatter", "configure_logging"]

ACCESS_LOGGER = "atstack.access"

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


_second: tuple[int, str] = (-1, "")  # the last second formatted (lines come many per second)


def _utc_timestamp(created: float) -> str:
    global _second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    last = _second
    if last[0] != seconds:
        last = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{millis:03d}Z"


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object (no newlines inside, even for tracebacks)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        if fields.keys() - _RESERVED:  # only records given ``extra=`` need the walk in order
            for key, value in fields.items():
                if key not in _RESERVED and key[0] != "_":
                    entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=repr).decode()


def configure_logging(service: str, *, level: int | str = "INFO", stream: IO[str] | None = None) -> None:
    """Send all ``logging`` output to ``stream`` (stderr) as JSON lines tagged with ``service``.

    Replaces handlers on the root logger, so calling it again (tests, ``atstack up``) does not duplicate
    lines; aiohttp's own access logger is silenced because our middleware writes the access line.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
