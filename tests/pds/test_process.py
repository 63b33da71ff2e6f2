"""``atstack pds`` as a real process: health, JSON logs, clean SIGTERM exit, and ``kill -9`` during
concurrent writes losing no acknowledged write (records and firehose both)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pds_support import PASSWORD, free_port, post_record, spawn_pds, start_plc, wait_healthy

from atstack.core.crypto import parse_multikey
from atstack.core.did_doc import parse_did_doc
from atstack.core.repo_verify import verify_commit_slice
from atstack.core.stream import CommitEvent, decode_event

POST = "app.bsky.feed.post"


async def _post(
    http: aiohttp.ClientSession, url: str, nsid: str, body: Any, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{url}/xrpc/{nsid}", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _create_account(http: aiohttp.ClientSession, url: str, name: str) -> tuple[str, str]:
    status, body = await _post(
        http, url, "com.atproto.server.createAccount",
        {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD},
    )  # fmt: skip
    assert status == 200, body
    return body["did"], body["accessJwt"]


def _stop(proc: Any) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


async def test_health_logs_and_sigterm(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    plc_url, plc_runner = await start_plc(tmp_path / "plc")
    port = free_port()
    log = tmp_path / "pds.log"
    proc = spawn_pds(tmp_path / "pds", port, plc_url.replace("127.0.0.1", "localhost"), log)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(http, url, proc)
        did, _token = await _create_account(http, url, "alice")
        assert did.startswith("did:plc:")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        assert code == 0
        lines = [orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip()]
        assert any(rec["msg"].startswith("pds listening on") for rec in lines)
        assert all(rec["service"] == "pds" for rec in lines)
        assert any(rec.get("path") == "/xrpc/com.atproto.server.createAccount" for rec in lines)
    finally:
        _stop(proc)
        await plc_runner.cleanup()


async def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    plc_url, plc_runner = await start_plc(tmp_path / "plc")
    plc_url = plc_url.replace("127.0.0.1", "localhost")
    data = tmp_path / "pds"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_pds(data, port, plc_url)
    try:
        await wait_healthy(http, url, proc)
        users = [await _create_account(http, url, f"user{i}") for i in range(2)]
        acked: list[tuple[str, str, str, str]] = []  # (did, uri, record cid, commit cid)
        stop = asyncio.Event()

        async def writer(did: str, token: str, tag: str) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"repo": did, "collection": POST, "record": post_record(f"{tag}-{i}")}
                try:
                    status, out = await _post(http, url, "com.atproto.repo.createRecord", body, token)
                except (TimeoutError, aiohttp.ClientError):
                    return
                if status != 200:
                    return
                acked.append((did, out["uri"], out["cid"], out["commit"]["cid"]))

        tasks = [
            asyncio.create_task(writer(did, tok, f"w{n}{k}"))
            for n, (did, tok) in enumerate(users)
            for k in range(2)
        ]
        while len(acked) < 60:
            await asyncio.sleep(0.01)
        proc.kill()  # SIGKILL in the middle of the writes
        await asyncio.to_thread(proc.wait, 10)
        stop.set()
        await asyncio.gather(*tasks)
        assert len(acked) >= 60

        proc = spawn_pds(data, port, plc_url)
        await wait_healthy(http, url, proc)
        # every acknowledged record is there
        for did, uri, cid, _commit in acked:
            rkey = uri.rsplit("/", 1)[1]
            async with http.get(
                f"{url}/xrpc/com.atproto.repo.getRecord",
                params={"repo": did, "collection": POST, "rkey": rkey},
            ) as resp:
                body = await resp.json(content_type=None)
                assert resp.status == 200 and body["cid"] == cid, (uri, body)
        # a marker write after the restart, then replay the whole firehose up to it
        marker_did, marker_token = users[0]
        status, marker = await _post(
            http, url, "com.atproto.repo.createRecord",
            {"repo": marker_did, "collection": POST, "record": post_record("marker")}, marker_token,
        )  # fmt: skip
        assert status == 200, marker
        commits: list[CommitEvent] = []
        ws_url = url.replace("http", "ws") + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
        async with http.ws_connect(ws_url) as ws:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    async for msg in ws:
                        ev = decode_event(msg.data)
                        if isinstance(ev, CommitEvent):
                            commits.append(ev)
                            if ev.commit.encode() == marker["commit"]["cid"]:
                                break
        assert commits and commits[-1].commit.encode() == marker["commit"]["cid"]
        on_stream = {c.commit.encode() for c in commits}
        assert {commit for *_rest, commit in acked} <= on_stream
        # each repo's chain is unbroken across the crash (since/prevData, signatures, MST inversion)
        keys = {}
        for did, _tok in users:
            async with http.get(f"{plc_url}/{did}") as resp:
                keys[did] = parse_multikey(
                    parse_did_doc(await resp.json(content_type=None), did).signing_key or ""
                )
        last: dict[str, Any] = {}
        for ev in commits:
            commit = verify_commit_slice(
                ev.blocks, ev.ops, ev.prev_data, did=ev.repo, public_key=keys[ev.repo]
            )
            if ev.repo in last:
                assert ev.since == last[ev.repo][0] and ev.prev_data == last[ev.repo][1]
            last[ev.repo] = (ev.rev, commit.data)
        seq_list = [c.seq for c in commits]
        assert seq_list == sorted(seq_list)
    finally:
        _stop(proc)
        await plc_runner.cleanup()
