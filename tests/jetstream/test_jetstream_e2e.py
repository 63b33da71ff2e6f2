"""End to end: writes on a real PDS come out of /subscribe as Jetstream v1 JSON events."""

from __future__ import annotations

import aiohttp
from jetstream_support import Jet, Pds, Stream, wait_until, write_posts

POST = "app.bsky.feed.post"


async def test_commit_events_match_writes(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    stream = await Stream.open(http, jet.ws)
    alice = await pds.create_account("alice")
    written = await write_posts(pds, alice, 3)
    await stream.wait_for(5)
    commits = stream.commits()
    assert [c["commit"]["cid"] for c in commits] == [w["cid"] for w in written]
    for c, w in zip(commits, written, strict=True):
        assert c["did"] == alice.did
        assert c["commit"]["operation"] == "create"
        assert c["commit"]["collection"] == POST
        assert w["uri"].endswith("/" + c["commit"]["rkey"])
        assert c["commit"]["record"]["$type"] == POST
        assert list(c) == ["did", "time_us", "cursor", "kind", "commit"]
        assert c["cursor"] == c["time_us"]
    times = [e["time_us"] for e in stream.events]
    assert times == sorted(times) and len(set(times)) == len(times)
    kinds = [e["kind"] for e in stream.events]
    assert "identity" in kinds and "account" in kinds
    await stream.close()


async def test_metrics_and_status_page(http: aiohttp.ClientSession, pds: Pds, jet: Jet) -> None:
    plain = await Stream.open(http, jet.ws)
    packed = await Stream.open(http, jet.ws, {"compress": "true"})
    await wait_until(lambda: jet.service.fanout.live_count == 2, what="live")
    alice = await pds.create_account("alice")
    await write_posts(pds, alice, 2)
    await plain.wait_for(4)
    await packed.wait_for(4)
    async with http.get(jet.url + "/metrics") as resp:
        text = await resp.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values['jetstream_events_ingested_total{kind="commit"}'] == 2
    assert values['jetstream_events_ingested_total{kind="identity"}'] == 1
    assert values['jetstream_events_sent_total{encoding="json"}'] == 4
    assert values['jetstream_events_sent_total{encoding="zstd"}'] == 4
    assert values['jetstream_subscribers{endpoint="subscribe"}'] == 2
    assert values["jetstream_upstream_connected"] == 1
    assert values["jetstream_upstream_cursor"] >= 4  # the account's first (empty) commit has a seq but no op
    assert 0 <= values["jetstream_upstream_lag_seconds"] < 60
    zstd_bytes = values['jetstream_bytes_sent_total{encoding="zstd"}']
    assert 0 < zstd_bytes < values["jetstream_bytes_sent_uncompressed_total"]
    async with http.get(jet.url + "/status") as resp:
        status = await resp.json()
    assert status["events_stored"] == 4 and status["subscribers"] == 2 and status["upstream_connected"]
    assert status["upstream_cursor"] == values["jetstream_upstream_cursor"]
    async with http.get(jet.url + "/") as resp:
        page = await resp.text()
        assert resp.content_type == "text/html"
    assert "atstack jetstream" in page and "/subscribe" in page
    async with http.get(jet.url + "/xrpc/_health") as resp:
        assert resp.status == 200
    await plain.close()
    await packed.close()
