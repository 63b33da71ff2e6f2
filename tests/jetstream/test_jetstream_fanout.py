"""Fan-out selection by index lookups gives exactly what the per-event filter rule gives."""

from __future__ import annotations

import random

from atstack.jetstream.convert import JetEvent
from atstack.jetstream.fanout import _Batch
from atstack.jetstream.filters import KIND_ACCOUNT, KIND_COMMIT, KIND_IDENTITY, KIND_SYNC, Filter

DIDS = [f"did:plc:{i:024d}" for i in range(8)]
COLS = ["app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow", "com.example.note", ""]


def test_index_selection_matches_the_rule() -> None:
    rng = random.Random(5)
    checked = 0
    for _ in range(300):
        events = []
        for t in range(rng.randrange(1, 40)):
            kind = rng.choice([KIND_COMMIT] * 4 + [KIND_IDENTITY, KIND_ACCOUNT, KIND_SYNC])
            col = rng.choice(COLS) if kind == KIND_COMMIT else ""
            events.append(JetEvent(t + 1, kind, rng.choice(DIDS), col, b"x" * rng.randrange(10, 200)))
        batch = _Batch(events)
        for _ in range(10):
            dids = frozenset(rng.sample(DIDS, rng.randrange(1, 9))) if rng.random() < 0.5 else None
            full = frozenset(rng.sample(COLS[:4], rng.randrange(1, 4))) if rng.random() < 0.5 else None
            prefixes = tuple(rng.sample(["app.bsky.", "app.bsky.feed.", "com."], rng.randrange(0, 3)))
            flt = Filter(dids, full, prefixes, rng.choice([0, 0, 100]))
            expected = [
                i for i, e in enumerate(events)
                if e.kind != KIND_SYNC and flt.wants(e.kind, e.did, e.collection, len(e.data))
            ]  # fmt: skip
            assert batch.select(flt) == expected, flt
            checked += 1
    assert checked == 3000
