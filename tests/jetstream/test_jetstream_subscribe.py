"""v1 /subscribe against writes on a real PDS: filters, options_update, requireHello, cursor, zstd, size cap."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import zstandard
from jetstream_support import Account, Jet, Pds, Stream, wait_until

from atstack.jetstream.compression import v1_dictionary_bytes

POST = "app.bsky.feed.post"
NOTE = "com.example.note"
LIKE = "com.example.like"


def record(collection: str, text: str) -> dict[str, Any]:
    return {"$type": collection, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}


async def write(pds: Pds, account: Account, collection: str, text: str) -> str:
    r = await pds.create_record(account, record(collection, text))
    assert r.status == 200, r.body
    return r.body["cid"]


async def live(jet: Jet, n: int) -> None:
    await wait_until(lambda: jet.service.fanout.live_count >= n, what=f"{n} live subscribers")


def cids(stream: Stream) -> list[str]:
    return [e["commit"]["cid"] for e in stream.commits()]


async def test_collection_did_and_prefix_filters(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    everything = await Stream.open(http, jet.ws)
    posts = await Stream.open(http, jet.ws, [("wantedCollections", POST)])
    examples = await Stream.open(http, jet.ws, [("wantedCollections", "com.example.*")])
    alice_only = await Stream.open(http, jet.ws, [("wantedDids", alice.did)])
    bob_notes = await Stream.open(http, jet.ws, [("wantedDids", bob.did), ("wantedCollections", NOTE)])
    await live(jet, 5)
    written: list[tuple[str, str, str]] = []  # (did, collection, cid)
    for i in range(3):
        for acc in (alice, bob):
            for col in (POST, NOTE, LIKE):
                written.append((acc.did, col, await write(pds, acc, col, f"{col} {i}")))
    carol = await pds.create_account("carol")  # identity + account events for a third DID
    await everything.wait_for(len(written) + 2)
    await wait_until(
        lambda: sum(e["did"] == carol.did for e in everything.events) >= 2, what="carol's events"
    )

    assert cids(everything) == [w[2] for w in written]
    assert cids(posts) == [c for d, col, c in written if col == POST]
    assert cids(examples) == [c for d, col, c in written if col in (NOTE, LIKE)]
    assert cids(alice_only) == [c for d, col, c in written if d == alice.did]
    assert cids(bob_notes) == [c for d, col, c in written if d == bob.did and col == NOTE]
    # identity/account events bypass wantedCollections but obey wantedDids
    for stream in (posts, examples):
        kinds = {e["kind"] for e in stream.events if e["did"] == carol.did}
        assert kinds == {"identity", "account"}
    assert all(e["did"] == alice.did for e in alice_only.events)
    assert all(e["did"] == bob.did for e in bob_notes.events)
    for stream in (everything, posts, examples, alice_only, bob_notes):
        await stream.close()


async def test_options_update_replaces_filter_live(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    stream = await Stream.open(http, jet.ws, [("wantedCollections", POST)])
    await live(jet, 1)
    p1 = await write(pds, alice, POST, "p1")
    await write(pds, alice, NOTE, "n1")
    await wait_until(lambda: len(stream.commits()) == 1, what="p1")
    await stream.send(
        {"type": "options_update", "payload": {"wantedCollections": [NOTE], "wantedDids": [bob.did]}}
    )
    sub = jet.service.fanout.subscribers[0]
    await wait_until(lambda: sub.filter.collections == frozenset({NOTE}), what="filter switch")
    await write(pds, alice, NOTE, "n2 (alice: filtered out by DID now)")
    await write(pds, bob, POST, "p2 (filtered out by collection now)")
    n3 = await write(pds, bob, NOTE, "n3")
    await wait_until(lambda: len(stream.commits()) == 2, what="n3")
    await asyncio.sleep(0.1)
    assert cids(stream) == [p1, n3]
    # an empty payload means no filter at all
    await stream.send({"type": "options_update", "payload": {}})
    await wait_until(
        lambda: sub.filter.wants_all_collections and sub.filter.dids is None, what="filter cleared"
    )
    p3 = await write(pds, alice, POST, "p3")
    await wait_until(lambda: len(stream.commits()) == 3, what="p3")
    assert cids(stream)[-1] == p3
    await stream.close()


async def test_require_hello_waits_for_first_options_update(
    http: aiohttp.ClientSession, pds: Pds, jet: Jet
) -> None:
    alice = await pds.create_account("alice")
    first = await write(pds, alice, POST, "before connecting")
    stream = await Stream.open(http, jet.ws, {"requireHello": "true", "cursor": "0"})
    second = await write(pds, alice, POST, "while waiting for hello")
    await asyncio.sleep(0.3)
    assert stream.events == []
    assert jet.service.fanout.live_count == 0
    await stream.send({"type": "something_else", "payload": {}})  # not a hello
    await asyncio.sleep(0.1)
    assert stream.events == []
    await stream.send({"type": "options_update", "payload": {"wantedCollections": [POST]}})
    await wait_until(lambda: len(stream.commits()) == 2, what="replay after hello")
    third = await write(pds, alice, POST, "after hello")
    await wait_until(lambda: len(stream.commits()) == 3, what="live after hello")
    assert cids(stream) == [first, second, third]
    assert {e["kind"] for e in stream.events} == {"identity", "account", "commit"}
    await stream.close()


async def test_cursor_replay_then_live_without_gap_or_duplicate(
    http: aiohttp.ClientSession, pds: Pds, jet: Jet
) -> None:
    jet.service.fanout.replay_batch = 3  # many replay rounds, so the switch to live races the writes
    alice = await pds.create_account("alice")
    everything = await Stream.open(http, jet.ws)
    await live(jet, 1)
    for i in range(6):
        await write(pds, alice, POST, f"early {i}")
    await everything.wait_for(6)
    start = everything.events[2]["time_us"]

    async def writer() -> None:
        for i in range(15):
            await write(pds, alice, NOTE, f"during replay {i}")

    task = asyncio.create_task(writer())
    resumed = await Stream.open(http, jet.ws, {"cursor": str(start)})
    await task
    total = 6 + 15
    await everything.wait_for(total)
    await wait_until(lambda: len(resumed.commits()) >= total - 2, what="resumed stream")
    await asyncio.sleep(0.1)
    expected = [e for e in everything.events if e["time_us"] >= start]  # the cursor is inclusive
    assert resumed.events == expected
    assert resumed.raw == [r for r in everything.raw if r in set(resumed.raw)]
    await everything.close()
    await resumed.close()


async def test_cursor_edges(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    for i in range(4):
        await write(pds, alice, POST, f"p{i}")
    await wait_until(lambda: jet.service.store.count_sync() == 6, what="stored events")
    stored = await jet.service.store.read_from(0, 100)
    # cursor 0 (older than everything) starts at the oldest retained event
    old = await Stream.open(http, jet.ws, {"cursor": "0"})
    await old.wait_for(6)
    assert [e["time_us"] for e in old.events] == [e.time_us for e in stored]
    # after retention trimmed the start, an old cursor starts at the oldest retained event
    await jet.service.store.trim_before(stored[3].time_us)
    trimmed = await Stream.open(http, jet.ws, {"cursor": "1"})
    await trimmed.wait_for(3)
    assert [e["time_us"] for e in trimmed.events] == [e.time_us for e in stored[3:]]
    # a cursor in the future means live only
    future = await Stream.open(http, jet.ws, {"cursor": str(jet.service.config.clock() + 10**9)})
    await live(jet, 3)
    last = await write(pds, alice, POST, "live")
    await wait_until(lambda: len(future.commits()) == 1, what="live event")
    assert cids(future) == [last] and len(future.events) == 1
    for s in (old, trimmed, future):
        await s.close()


async def test_zstd_frames_are_the_json_compressed(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    plain = await Stream.open(http, jet.ws)
    by_query = await Stream.open(http, jet.ws, {"compress": "true"})
    by_header = await Stream.open(http, jet.ws, headers={"Socket-Encoding": "zstd"})
    await live(jet, 3)
    alice = await pds.create_account("alice")
    for i in range(5):
        await write(pds, alice, POST, f"compressed post {i} " + "text " * i)
    for s in (plain, by_query, by_header):
        await s.wait_for(7)
    stock = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(v1_dictionary_bytes()))
    for s in (by_query, by_header):
        assert len(s.compressed) == len(plain.raw) == 7
        assert [stock.decompress(frame) for frame in s.compressed] == plain.raw
        assert sum(map(len, s.compressed)) < sum(map(len, plain.raw))
    assert plain.compressed == []
    # a cursor replay on a zstd connection is compressed the same way
    replay = await Stream.open(http, jet.ws, {"compress": "true", "cursor": "0"})
    await replay.wait_for(7)
    assert [stock.decompress(frame) for frame in replay.compressed] == plain.raw
    for s in (plain, by_query, by_header, replay):
        await s.close()


async def test_max_message_size_skips_larger_events(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    capped = await Stream.open(http, jet.ws, {"maxMessageSizeBytes": "600", "wantedCollections": NOTE})
    garbage = await Stream.open(http, jet.ws, {"maxMessageSizeBytes": "lots", "wantedCollections": NOTE})
    await live(jet, 2)
    small = await write(pds, alice, NOTE, "short")
    big = await write(pds, alice, NOTE, "long " * 200)
    await wait_until(lambda: len(garbage.commits()) == 2, what="uncapped events")
    await asyncio.sleep(0.1)
    assert cids(capped) == [small]
    assert cids(garbage) == [small, big]  # a malformed cap means no cap
    assert all(len(r) <= 600 for r in capped.raw)
    await capped.close()
    await garbage.close()
