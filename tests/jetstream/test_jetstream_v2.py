"""v2 network.bsky.jetstream.subscribeEvents per its lexicon: frames, filters, cursor, zstd, errors."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from jetstream_support import V2_NSID, Jet, Pds, wait_until
from jetstream_support import connect_v2 as connect

from atstack.jetstream.compression import V1_DICTIONARY_ID, v1_dictionary_bytes

NSID = V2_NSID
POST = "app.bsky.feed.post"
NOTE = "com.example.note"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def write(pds: Pds, acc: Any, collection: str, text: str) -> str:
    r = await pds.create_record(
        acc, {"$type": collection, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
    )
    assert r.status == 200, r.body
    return r.body["cid"]


async def test_frames_and_filters(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    everything = await connect(http, jet, protocols=("xrpc.v1.json",))
    assert everything.ws.protocol == "xrpc.v1.json"
    commits = await connect(http, jet, [("kinds", "commit"), ("collections", NOTE)])
    others = await connect(http, jet, [("collections", NOTE), ("dids", alice.did)])
    await wait_until(lambda: jet.service.v2.live_count == 3)
    post = await write(pds, alice, POST, "p")
    note = await write(pds, alice, NOTE, "n")
    bob = await pds.create_account("bob")
    await wait_until(lambda: len(everything.payloads()) >= 4, what="events")
    await wait_until(lambda: len(commits.payloads()) >= 1 and len(others.payloads()) >= 1, what="filtered")
    await asyncio.sleep(0.1)
    first = everything.payloads("commit")[0]
    assert first["$type"] == f"{NSID}#commit"
    assert first["cid"] == post and first["operation"] == "create" and first["collection"] == POST
    assert first["record"]["text"] == "p" and first["did"] == alice.did and TIME.match(first["time"])
    seqs = [p["seq"] for p in everything.payloads()]
    assert seqs == sorted(set(seqs))
    ident = everything.payloads("identity")[0]
    assert ident["did"] == bob.did and ident["identity"]["handle"] == "bob.test"
    assert everything.payloads("account")[0]["account"]["active"] is True
    assert [p["cid"] for p in commits.payloads()] == [note]  # commits of NOTE only: no identity/account
    assert [p.get("cid") for p in others.payloads()] == [note]  # alice's only; collections spare non-commits
    for s in (everything, commits, others):
        await s.close()


async def test_cursor_zstd_and_dictionary(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    cids = [await write(pds, alice, POST, f"p{i}") for i in range(3)]
    async with http.get(jet.url + "/xrpc/network.bsky.jetstream.getZstdDictionary") as resp:
        assert resp.status == 200 and await resp.read() == v1_dictionary_bytes()
    async with http.get(
        jet.url + "/xrpc/network.bsky.jetstream.getZstdDictionary", params={"id": "7"}
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "DictionaryNotFound"
    await wait_until(lambda: jet.service.store.count_sync() >= 5, what="stored")
    stored = await jet.service.store.read_from(0, 10)
    s = await connect(
        http,
        jet,
        {"cursor": str(stored[3].time_us), "zstdDictionary": str(V1_DICTIONARY_ID), "kinds": "commit"},
    )
    await wait_until(lambda: len(s.payloads()) == 2, what="replay")
    assert [p["cid"] for p in s.payloads()] == cids[1:]  # inclusive cursor
    assert [p["seq"] for p in s.payloads()] == [e.time_us for e in stored[3:]]
    assert len(s.compressed) == 2
    live = await write(pds, alice, POST, "live")
    await wait_until(lambda: len(s.payloads()) == 3, what="live")
    assert s.payloads()[-1]["cid"] == live
    await s.close()


async def test_outdated_cursor_and_too_old(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    alice = await pds.create_account("alice")
    for i in range(3):
        await write(pds, alice, POST, f"p{i}")
    await wait_until(lambda: jet.service.store.count_sync() >= 5, what="stored")
    stored = await jet.service.store.read_from(0, 10)
    await jet.service.store.trim_before(stored[2].time_us)
    url = jet.url + f"/xrpc/{NSID}"
    async with http.get(url, params={"cursor": "5"}, headers={"Upgrade": "websocket"}) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "CursorTooOld"
    s = await connect(http, jet, {"cursor": str(stored[0].time_us)})  # a timestamp below the floor: clamped
    await wait_until(lambda: len(s.frames) >= 4, what="clamped replay")
    assert s.frames[0]["payload"]["$type"] == f"{NSID}#info"
    assert s.frames[0]["payload"]["name"] == "OutdatedCursor"
    assert [p["seq"] for p in s.payloads()[1:]] == [e.time_us for e in stored[2:]]
    await s.close()


@pytest.mark.parametrize(
    ("params", "headers", "error"),
    [
        ({"wantedCollections": POST}, {}, "InvalidRequest"),
        ({"wantedDids": "did:plc:x"}, {}, "InvalidRequest"),
        ({"compress": "true"}, {}, "InvalidRequest"),
        ({}, {"Socket-Encoding": "zstd"}, "InvalidRequest"),
        ({"requireHello": "true"}, {}, "InvalidRequest"),
        ({"kinds": "commits"}, {}, "InvalidRequest"),
        ([("kinds", "identity"), ("collections", POST)], {}, "InvalidRequest"),
        ({"collections": "nope"}, {}, "InvalidRequest"),
        ({"dids": "nope"}, {}, "InvalidRequest"),
        ({"cursor": "abc"}, {}, "InvalidRequest"),
        ({"maxMessageSizeBytes": "-1"}, {}, "InvalidRequest"),
        ({"zstdDictionary": "12345"}, {}, "UnknownZstdDictionary"),
    ],
)
async def test_pre_upgrade_errors(
    http: aiohttp.ClientSession, jet: Jet, params: Any, headers: dict[str, str], error: str
) -> None:
    async with http.get(
        jet.url + f"/xrpc/{NSID}", params=params, headers={"Upgrade": "websocket", **headers}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == error


async def test_client_messages_close_the_stream(http: aiohttp.ClientSession, jet: Jet) -> None:
    s = await connect(http, jet)
    await s.ws.send_str('{"type":"options_update","payload":{}}')
    msg = await asyncio.wait_for(s.task, 5)
    assert msg is None and s.ws.close_code == 1008
    async with http.post(jet.url + f"/xrpc/{NSID}") as resp:
        assert resp.status == 405
    async with http.get(jet.url + f"/xrpc/{NSID}") as resp:
        assert resp.status == 426
