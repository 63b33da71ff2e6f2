"""Timestamp identifiers (TIDs): record keys and commit revisions.

Spec: atproto.com/specs/tid, checklist §1. A TID is a 64-bit integer ``0 | 53-bit microseconds since the UNIX
epoch | 10-bit clock id`` written as 13 characters of the base32-sortable alphabet ``234567a-z`` (5 bits per
character, most significant first, the top character carrying the always-zero bit 64). Because the alphabet is in
ASCII order and the length is fixed, string order equals numeric order, so TIDs sort as plain strings.

Generators must never repeat or go backwards within a process: ``TIDClock`` bumps the timestamp by one
microsecond when the clock repeats or regresses. This module is pure: the time source is injected (``now_us``);
the default reads the wall clock but performs no other I/O.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from atstack.core.syntax import InvalidSyntax, ensure_valid_tid, is_valid_tid

__all__ = [
    "MAX_TIMESTAMP_US",
    "TIDClock",
    "next_tid",
    "tid_clock_id",
    "tid_compare",
    "tid_from_parts",
    "tid_to_int",
    "tid_to_timestamp_us",
]

MAX_TIMESTAMP_US = (1 << 53) - 1
MAX_CLOCK_ID = (1 << 10) - 1

_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Encoding 10 bits (two characters) per table lookup keeps ``next()`` well under a microsecond; decoding maps the
# alphabet onto Python's own base-32 digits so ``int(…, 32)`` does the work in C.
_PAIRS = tuple(_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024))
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")


def _encode(value: int) -> str:
    p = _PAIRS
    return (
        _ALPHABET[value >> 60]
        + p[(value >> 50) & 1023]
        + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023]
        + p[(value >> 20) & 1023]
        + p[(value >> 10) & 1023]
        + p[value & 1023]
    )


def tid_to_int(tid: str) -> int:
    """The 64-bit integer a valid TID encodes (syntax allows the top bit, so up to 2^64-1)."""
    ensure_valid_tid(tid)
    return int(tid.translate(_TO_INT_DIGITS), 32)


def tid_from_parts(timestamp_us: int, clock_id: int) -> str:
    """Encode microseconds since the epoch (0 ≤ t < 2^53) and a clock id (0 ≤ c < 1024) as a TID."""
    if not 0 <= timestamp_us <= MAX_TIMESTAMP_US:
        raise ValueError(f"TID timestamp must be within 0..2^53-1 microseconds, got {timestamp_us}")
    if not 0 <= clock_id <= MAX_CLOCK_ID:
        raise ValueError(f"TID clock id must be within 0..1023, got {clock_id}")
    return _encode((timestamp_us << 10) | clock_id)


def tid_to_timestamp_us(tid: str) -> int:
    """Microseconds since the UNIX epoch carried by a TID (untrusted when the TID came from a client)."""
    return tid_to_int(tid) >> 10


def tid_clock_id(tid: str) -> int:
    return tid_to_int(tid) & MAX_CLOCK_ID


def tid_compare(a: str, b: str) -> int:
    """-1, 0 or 1 like a classic comparator; plain string order of valid TIDs is their numeric order."""
    if not (is_valid_tid(a) and is_valid_tid(b)):
        raise InvalidSyntax("tid_compare needs two valid TIDs")
    return (a > b) - (a < b)


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class TIDClock:
    """A strictly increasing TID generator, safe to share between threads.

    ``now_us`` returns microseconds since the UNIX epoch (default: the wall clock). ``clock_id`` defaults to a
    random 10-bit value picked once per clock, so two processes writing at the same microsecond still differ.
    """

    __slots__ = ("_clock_id", "_last_us", "_lock", "_now_us")

    def __init__(self, *, clock_id: int | None = None, now_us: Callable[[], int] = _wall_clock_us) -> None:
        if clock_id is None:
            clock_id = secrets.randbits(10)
        if not 0 <= clock_id <= MAX_CLOCK_ID:
            raise ValueError(f"TID clock id must be within 0..1023, got {clock_id}")
        self._clock_id = clock_id
        self._now_us = now_us
        self._last_us = -1
        self._lock = threading.Lock()

    @property
    def clock_id(self) -> int:
        return self._clock_id

    def next(self) -> str:
        """A TID greater than every TID this clock returned before."""
        with self._lock:
            now = self._now_us()
            # Same microsecond or a clock that stepped back: keep counting from the last value instead.
            if now <= self._last_us:
                now = self._last_us + 1
            self._last_us = now
        if now > MAX_TIMESTAMP_US:
            raise ValueError("TID clock is past the 53-bit microsecond range")
        return _encode((now << 10) | self._clock_id)

    def next_after(self, floor: str | None) -> str:
        """A TID greater than ``floor`` (e.g. a repo's stored commit ``rev``) and than every earlier one.

        A ``floor`` ahead of this clock (an imported repo, a rev written by a faster clock) is stepped over
        for this one answer only: moving the shared clock to it would hand every other repo revs from that
        future too.
        """
        tid = self.next()
        if floor is None or tid > floor:
            return tid
        return tid_from_parts(min(tid_to_timestamp_us(floor) + 1, MAX_TIMESTAMP_US), self.clock_id)


_process_clock = TIDClock()


def next_tid() -> str:
    """Next TID from the process-wide clock."""
    return _process_clock.next()
