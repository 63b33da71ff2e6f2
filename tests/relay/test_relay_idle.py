"""A host that goes quiet for ``idle_timeout`` is unsubscribed and marked ``idle``; a ``requestCrawl`` brings it
back. (The relay watches the last frame time instead of arming a receive timer per frame.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from fake_host import FakeHost
from relay_support import Firehose, get_json, start_relay

from atstack.core.stream import CommitEvent


async def _status(http: aiohttp.ClientSession, relay_url: str, hostname: str) -> str:
    status, body = await get_json(
        http, f"{relay_url}/xrpc/com.atproto.sync.getHostStatus", {"hostname": hostname}
    )
    assert status == 200, body
    return body["status"]


async def _wait_status(http: aiohttp.ClientSession, relay_url: str, hostname: str, want: str) -> None:
    for _ in range(400):
        if await _status(http, relay_url, hostname) == want:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"host never became {want!r}: {await _status(http, relay_url, hostname)!r}")


async def test_quiet_host_goes_idle_and_a_crawl_request_wakes_it(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    host = await FakeHost(plc_url, http).start()
    relay = await start_relay(tmp_path / "relay", plc_url, idle_timeout=0.6)
    try:
        account = await host.create_account("quiet.test")
        host.announce(account)
        crawl = f"{relay.url}/xrpc/com.atproto.sync.requestCrawl"
        async with http.post(crawl, json={"hostname": host.hostname}) as resp:
            assert resp.status == 200, await resp.text()
        firehose = Firehose(relay.ws_url, http, cursor=0).start()
        await firehose.wait_for(lambda evs: any(type(e) is CommitEvent for e in evs))
        # frames keep it active: a commit every 0.2 s for longer than the idle timeout
        for _ in range(6):
            host.send_commit(account.did, account.write())
            await asyncio.sleep(0.2)
            assert await _status(http, relay.url, host.hostname) == "active"
        await _wait_status(http, relay.url, host.hostname, "idle")
        assert host.connections == 1  # idle means unsubscribed, not reconnecting
        # a new crawl request resubscribes from the stored cursor and the next commit comes through
        async with http.post(crawl, json={"hostname": host.hostname}) as resp:
            assert resp.status == 200, await resp.text()
        await _wait_status(http, relay.url, host.hostname, "active")
        await host.wait_connected(2)
        host.send_commit(account.did, account.write())
        events = await firehose.wait_for(
            lambda evs: sum(type(e) is CommitEvent for e in evs) == 8, timeout=15
        )
        revs = [e.rev for e in events if type(e) is CommitEvent]
        assert revs == sorted(revs) and len(set(revs)) == 8
        await firehose.stop()
    finally:
        await relay.close()
        await host.close()
