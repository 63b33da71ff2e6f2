"""TID encoding, decoding, ordering and the monotonic clock."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator

import pytest

import vectors
from atstack.core import syntax as sx
from atstack.core.tid import (
    MAX_TIMESTAMP_US,
    TIDClock,
    next_tid,
    tid_clock_id,
    tid_compare,
    tid_from_parts,
    tid_to_int,
    tid_to_timestamp_us,
)

ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# checklist §0: spec-consistent TIDs the monorepo copy of the vectors adds
EXTRA_VALID_TIDS = ["a222222222222", "j222222222222", "azzzzzzzzzzzz"]


def reference_value(tid: str) -> int:
    """Independent decoding: 13 base-32 digits, most significant first."""
    value = 0
    for ch in tid:
        value = value * 32 + ALPHABET.index(ch)
    return value


def scripted(times: list[int]) -> Callable[[], int]:
    it: Iterator[int] = iter(times)
    return lambda: next(it)


def test_zero_and_known_value() -> None:
    assert tid_from_parts(0, 0) == "2222222222222"
    assert tid_to_int("2222222222222") == 0
    assert tid_to_timestamp_us("2222222222222") == 0 and tid_clock_id("2222222222222") == 0
    value = reference_value("3jzfcijpj2z2a")
    assert tid_to_int("3jzfcijpj2z2a") == value
    assert tid_to_timestamp_us("3jzfcijpj2z2a") == value >> 10
    assert tid_clock_id("3jzfcijpj2z2a") == value & 1023
    assert tid_from_parts(value >> 10, value & 1023) == "3jzfcijpj2z2a"


def test_vectors_and_extra_tids_decode() -> None:
    cases = [*vectors.vector_lines("syntax", "tid_syntax_valid.txt"), *EXTRA_VALID_TIDS]
    for tid in cases:
        value = reference_value(tid)
        assert tid_to_int(tid) == value
        ts, clock = value >> 10, value & 1023
        if ts <= MAX_TIMESTAMP_US:
            assert tid_from_parts(ts, clock) == tid
        else:  # syntax allows the top bit; generators never set it
            with pytest.raises(ValueError):
                tid_from_parts(ts, clock)
    assert len(cases) > 0
    for tid in vectors.vector_lines("syntax", "tid_syntax_invalid.txt"):
        with pytest.raises(sx.InvalidSyntax):
            tid_to_int(tid)


def test_round_trip_random() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        ts, clock = rng.randrange(MAX_TIMESTAMP_US + 1), rng.randrange(1024)
        tid = tid_from_parts(ts, clock)
        assert sx.is_valid_tid(tid)
        assert (tid_to_timestamp_us(tid), tid_clock_id(tid)) == (ts, clock)
        assert reference_value(tid) == (ts << 10) | clock
    top = tid_from_parts(MAX_TIMESTAMP_US, 1023)
    assert tid_to_int(top) == (1 << 63) - 1


def reference_tid(value: int) -> str:
    return "".join(ALPHABET[(value >> (5 * (12 - i))) & 31] for i in range(13))


def test_string_order_is_numeric_order() -> None:
    rng = random.Random(99)
    values = [rng.getrandbits(64) >> rng.randrange(64) for _ in range(3000)] + [
        0,
        1,
        (1 << 63) - 1,
        (1 << 64) - 1,
    ]
    tids = [reference_tid(v) for v in values]
    assert all(sx.is_valid_tid(t) and tid_to_int(t) == v for t, v in zip(tids, values, strict=True))
    assert sorted(tids) == [reference_tid(v) for v in sorted(values)]
    a, b = tid_from_parts(5, 0), tid_from_parts(5, 1)
    assert tid_compare(a, b) == -1 and tid_compare(b, a) == 1 and tid_compare(a, a) == 0
    with pytest.raises(sx.InvalidSyntax):
        tid_compare(a, "nope")


def test_from_parts_ranges() -> None:
    for ts, clock in ((-1, 0), (MAX_TIMESTAMP_US + 1, 0), (0, -1), (0, 1024)):
        with pytest.raises(ValueError):
            tid_from_parts(ts, clock)


def test_clock_monotonic_when_time_repeats_and_goes_back() -> None:
    times = [1000, 1000, 1000, 999, 500, 1004, 2000, 1500, 2000, 2001]
    clock = TIDClock(clock_id=7, now_us=scripted(times))
    tids = [clock.next() for _ in times]
    assert all(a < b for a, b in itertools.pairwise(tids)), tids
    assert [tid_to_timestamp_us(t) for t in tids] == [
        1000,
        1001,
        1002,
        1003,
        1004,
        1005,
        2000,
        2001,
        2002,
        2003,
    ]
    assert {tid_clock_id(t) for t in tids} == {7}
    assert clock.clock_id == 7


def test_clock_id_default_and_validation() -> None:
    ids = {TIDClock().clock_id for _ in range(64)}
    assert all(0 <= i < 1024 for i in ids)
    assert len(ids) > 1, "clock ids should be random"
    for bad in (-1, 1024):
        with pytest.raises(ValueError):
            TIDClock(clock_id=bad)


def test_clock_thread_safe() -> None:
    clock = TIDClock(clock_id=1, now_us=lambda: 42)  # every call lands on the same microsecond
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def worker(out: list[str]) -> None:
        for _ in range(2000):
            out.append(clock.next())

    threads = [threading.Thread(target=worker, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [tid for out in per_thread for tid in out]
    assert len(set(everything)) == 8000
    for out in per_thread:
        assert out == sorted(out) and len(set(out)) == len(out)
    assert max(tid_to_timestamp_us(t) for t in everything) == 42 + 7999


def test_next_after_floor() -> None:
    clock = TIDClock(clock_id=0, now_us=lambda: 100)
    floor = tid_from_parts(5000, 1023)
    after = clock.next_after(floor)
    assert after > floor and tid_to_timestamp_us(after) == 5001
    # A floor from the future does not drag the shared clock (and so every other repo's revs) along.
    assert tid_to_timestamp_us(clock.next()) < 5000
    assert clock.next_after(after) > after
    assert clock.next_after(None) < floor


def test_process_clock() -> None:
    tids = [next_tid() for _ in range(1000)]
    assert all(sx.is_valid_tid(t) for t in tids)
    assert all(a < b for a, b in itertools.pairwise(tids))
    assert len({tid_clock_id(t) for t in tids}) == 1
