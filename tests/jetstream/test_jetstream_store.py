"""The LMDB event store: append order, range reads, the upstream cursor, retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from atstack.jetstream.convert import JetEvent
from atstack.jetstream.filters import KIND_COMMIT, KIND_IDENTITY
from atstack.jetstream.store import EventStore


def ev(t: int, kind: int = KIND_COMMIT, did: str = "did:plc:x", col: str = "a.b.c") -> JetEvent:
    return JetEvent(t, kind, did, col if kind == KIND_COMMIT else "", b'{"t":%d}' % t)


async def test_append_read_reopen(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s", map_size=1 << 26)
    await store.open()
    assert store.latest_time_us is None and store.upstream_cursor is None
    await store.append([ev(10), ev(20, KIND_IDENTITY, "did:web:é.example"), ev(30)], 5)
    await store.append([], 6)  # the cursor alone may advance
    assert (store.oldest_time_us, store.latest_time_us, store.upstream_cursor) == (10, 30, 6)
    assert [e.time_us for e in await store.read_from(15, 10)] == [20, 30]
    assert [e.time_us for e in await store.read_from(0, 2)] == [10, 20]
    assert await store.read_from(31, 10) == []
    assert (await store.read_from(20, 1))[0] == ev(20, KIND_IDENTITY, "did:web:é.example")
    with pytest.raises(ValueError, match="increasing"):
        await store.append([ev(30)], 7)
    assert store.upstream_cursor == 6  # the failed batch changed nothing
    await store.close()
    again = EventStore(tmp_path / "s", map_size=1 << 26)
    await again.open()
    assert (again.oldest_time_us, again.latest_time_us, again.upstream_cursor) == (10, 30, 6)
    assert again.count_sync() == 3
    await again.close()


async def test_trim_is_a_range_delete(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s", map_size=1 << 28)
    await store.open()
    await store.append([ev(t) for t in range(1, 50_001)], 1)
    removed = await store.trim_before(45_001)
    assert removed == 45_000
    assert store.oldest_time_us == 45_001 and store.floor == 45_001
    assert [e.time_us for e in await store.read_from(0, 3)] == [45_001, 45_002, 45_003]
    assert await store.trim_before(10) == 0
    assert store.floor == 45_001  # the floor never moves back
    await store.close()
