"""The persisted, seq-ordered events an :class:`~atstack.xrpc.stream.EventStreamHub` replays from.

Spec: atproto.com/specs/event-stream ("Sequence Numbers"), checklist §5. :class:`EventLog` is what a service
supplies (the PDS's and the relay's sequencers implement it over their databases); :class:`MemoryEventLog`
keeps the last events in memory (tests, ephemeral streams). Both are re-exported by ``atstack.xrpc.stream``.
"""

from __future__ import annotations

import bisect
from typing import Protocol

__all__ = ["EventLog", "MemoryEventLog"]


class EventLog(Protocol):
    """The persisted, seq-ordered events a hub replays from (the sequencer's table, the relay's log)."""

    def latest_seq(self) -> int | None:
        """Highest persisted seq, ``None`` when empty."""
        ...

    def oldest_seq(self) -> int | None:
        """Lowest seq still retained, ``None`` when empty."""
        ...

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` ``(seq, frame)`` with ``seq > cursor``, ascending; frames already encoded."""
        ...


class MemoryEventLog:
    """An in-memory :class:`EventLog` keeping the last ``retain`` events (tests, ephemeral streams)."""

    def __init__(self, retain: int = 100_000) -> None:
        self.retain = retain
        self._seqs: list[int] = []
        self._frames: list[bytes] = []

    def append(self, seq: int, frame: bytes) -> None:
        if self._seqs and seq <= self._seqs[-1]:
            raise ValueError(f"seq {seq} is not above the latest {self._seqs[-1]}")
        self._seqs.append(seq)
        self._frames.append(frame)
        if len(self._seqs) > self.retain * 2:
            # trim in bulk so appends stay amortised O(1)
            del self._seqs[: -self.retain]
            del self._frames[: -self.retain]

    def trim_before(self, seq: int) -> None:
        """Drop events below ``seq`` (what a retention job does)."""
        cut = bisect.bisect_left(self._seqs, seq)
        del self._seqs[:cut]
        del self._frames[:cut]

    def _start(self) -> int:
        return max(0, len(self._seqs) - self.retain)

    def latest_seq(self) -> int | None:
        return self._seqs[-1] if self._seqs else None

    def oldest_seq(self) -> int | None:
        return self._seqs[self._start()] if self._seqs else None

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        lo = max(bisect.bisect_right(self._seqs, cursor), self._start())
        hi = min(lo + limit, len(self._seqs))
        return list(zip(self._seqs[lo:hi], self._frames[lo:hi], strict=True))
