"""identity/account events obey ``wantedDids`` and bypass ``wantedCollections`` (checklist §13), on the
live path (index lookups), the replay path (the per-event rule) and after ``options_update``, for text and
zstd subscribers alike; ``#sync`` is never on the v1 wire.

Each stream's expectation is computed from the checklist's rule written out here, not from the server's
``Filter``. A last event every stream wants is the barrier: events arrive in order, so once it is in,
anything wrongly delivered would already be there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from jetstream_support import Jet, Stream, wait_until
from jetstream_synthetic import ALICE, BOB, CAROL, Feed, start_fed

POST = "app.bsky.feed.post"
NOTE = "com.example.note"
LIKE = "com.example.like"

FILTERS: dict[str, list[tuple[str, str]]] = {
    "everything": [],
    "notes": [("wantedCollections", NOTE)],
    "examples": [("wantedCollections", "com.example.*")],
    "alice": [("wantedDids", ALICE)],
    "alice_notes": [("wantedDids", ALICE), ("wantedCollections", NOTE)],
    "alice_bob_examples": [
        ("wantedDids", ALICE),
        ("wantedDids", BOB),
        ("wantedCollections", "com.example.*"),
    ],
}


def rule(params: list[tuple[str, str]], event: dict[str, Any]) -> bool:
    """The checklist: DIDs filter every kind; collections filter commits only; #sync never."""
    dids = {v for k, v in params if k == "wantedDids"}
    cols = [v for k, v in params if k == "wantedCollections"]
    if event["kind"] == "sync" or (dids and event["did"] not in dids):
        return False
    if event["kind"] != "commit" or not cols:
        return True
    col = event["commit"]["collection"]
    return any(col == c or (c.endswith(".*") and col.startswith(c[:-1])) for c in cols)


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[tuple[Jet, Feed]]:
    jet, feed = await start_fed(tmp_path / "jetstream")
    yield jet, feed
    await jet.stop()


async def until_barrier(stream: Stream, time_us: int) -> None:
    await wait_until(
        lambda: any(e["time_us"] == time_us for e in stream.events) or stream.closed.is_set(),
        what=f"the barrier event {time_us}",
    )


async def everyone_everything(feed: Feed) -> list[dict[str, Any]]:
    """For each DID: identity, account (twice), a commit in three collections, and a #sync."""
    rows = []
    for did in (ALICE, BOB, CAROL):
        rows += await feed.publish(
            feed.identity(did),
            feed.account(did, active=False),
            feed.commit(did, POST, "p"),
            feed.commit(did, NOTE, "n"),
            feed.sync(did),
            feed.commit(did, LIKE, "l"),
            feed.account(did, active=True),
        )
    rows += await feed.publish(feed.commit(ALICE, NOTE, "the end"))  # wanted by every stream: the barrier
    return [orjson.loads(r.data) for r in rows]


async def open_all(http: aiohttp.ClientSession, jet: Jet, extra: dict[str, str]) -> dict[str, Stream]:
    return {
        name: await Stream.open(http, jet.ws, [*params, *extra.items()]) for name, params in FILTERS.items()
    }


def check(streams: dict[str, Stream], published: list[dict[str, Any]], since: int = 0) -> None:
    for name, stream in streams.items():
        want = [
            e["time_us"] for e in published if e["time_us"] >= since and rule(FILTERS[name], e)
        ]  # fmt: skip
        assert [e["time_us"] for e in stream.events] == want, name
        assert not any(e["kind"] == "sync" for e in stream.events)
        kinds = {e["kind"] for e in stream.events}
        assert {"identity", "account"} <= kinds, name
    # the point of the rule, spelled out once
    notes = streams["notes"].events
    assert {e["did"] for e in notes if e["kind"] == "identity"} == {ALICE, BOB, CAROL}
    alice_notes = streams["alice_notes"].events
    assert {e["did"] for e in alice_notes} == {ALICE}
    assert {e["kind"] for e in alice_notes} == {"identity", "account", "commit"}
    assert {e["commit"]["collection"] for e in alice_notes if e["kind"] == "commit"} == {NOTE}


@pytest.mark.parametrize("compress", [False, True])
async def test_live_identity_account_obey_dids_bypass_collections(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed], compress: bool
) -> None:
    jet, feed = fed
    streams = await open_all(http, jet, {"compress": "true"} if compress else {})
    await wait_until(lambda: jet.service.fanout.live_count == len(FILTERS), what="all live")
    published = await everyone_everything(feed)
    for stream in streams.values():
        await until_barrier(stream, published[-1]["time_us"])
    check(streams, published)
    for stream in streams.values():
        assert bool(stream.compressed) == compress
        await stream.close()


async def test_replay_identity_account_obey_dids_bypass_collections(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    jet.service.fanout.replay_batch = 4  # several store reads per replay
    published = await everyone_everything(feed)
    since = published[0]["time_us"]  # inclusive: that first event (alice's identity) is replayed
    streams = await open_all(http, jet, {"cursor": str(since)})
    for stream in streams.values():
        await until_barrier(stream, published[-1]["time_us"])
    check(streams, published, since)
    for stream in streams.values():
        await stream.close()


async def test_options_update_applies_the_same_rule(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    stream = await Stream.open(http, jet.ws, [("wantedCollections", POST)])
    await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
    payload = {"wantedDids": [BOB], "wantedCollections": [NOTE]}
    await stream.send({"type": "options_update", "payload": payload})
    sub = jet.service.fanout.subscribers[0]
    await wait_until(lambda: sub.filter.dids == frozenset({BOB}), what="the new filter")
    published = await everyone_everything(feed)
    barrier = (await feed.publish(feed.commit(BOB, NOTE, "bob's end")))[0].time_us
    await until_barrier(stream, barrier)
    params = [("wantedDids", BOB), ("wantedCollections", NOTE)]
    want = [e["time_us"] for e in published if rule(params, e)] + [barrier]
    assert [e["time_us"] for e in stream.events] == want
    assert [e["kind"] for e in stream.events] == ["identity", "account", "commit", "account", "commit"]
    await stream.close()
