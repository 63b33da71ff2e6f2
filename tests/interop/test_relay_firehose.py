"""Two real atstack PDSes crawled by an atstack relay; Bluesky's ``@atproto/sync`` ``Firehose`` (validation
on) consumes the relay and sees every commit exactly once, in per-repo order, and reports no error.

Everything runs as child processes started the way a user starts them (``atstack plc|pds`` and the relay's
click command), reached only over the wire. The PDSes announce themselves with ``requestCrawl``
(``--crawl <relay>``), so the relay's crawl path is the real one. ``js/firehose.mjs`` is the generic
``subscribeRepos`` consumer also used against the PDS directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_support import (
    Account,
    NodeLines,
    Service,
    Stack,
    create_account,
    free_port,
    spawn,
    wait_healthy,
    xrpc,
)

ADMIN = "relay-interop-admin"


@dataclass
class Network:
    plc_url: str
    relay_url: str
    pdses: list[Stack]

    @property
    def relay_ws(self) -> str:
        return "ws" + self.relay_url.removeprefix("http")


def spawn_relay(args: list[str], log: Path) -> Service:
    handle = log.open("wb")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from atstack.cli.relay import relay; relay()", *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ATSTACK_ADMIN_PASSWORD": ADMIN},
        )
    finally:
        handle.close()
    return Service("relay", proc, log)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """PLC, a relay, then two PDSes that ask the relay to crawl them."""
    services: list[Service] = []
    try:
        plc_port, relay_port = free_port(), free_port()
        plc_url, relay_url = f"http://localhost:{plc_port}", f"http://127.0.0.1:{relay_port}"
        plc = spawn(
            "plc", ["--data-dir", str(tmp_path / "plc"), "--port", str(plc_port)], tmp_path / "plc.log"
        )
        services.append(plc)
        wait_healthy(plc, plc_url)
        relay = spawn_relay(
            ["--data-dir", str(tmp_path / "relay"), "--port", str(relay_port), "--plc-url", plc_url,
             "--allow-private-hosts", "--reconnect-min-delay", "0.1"],
            tmp_path / "relay.log",
        )  # fmt: skip
        services.append(relay)
        wait_healthy(relay, relay_url)
        pdses: list[Stack] = []
        for i in range(2):
            port = free_port()
            pds = spawn(
                "pds",
                ["--data-dir", str(tmp_path / f"pds{i}"), "--port", str(port), "--hostname", "localhost",
                 "--plc-url", plc_url, "--admin-password", ADMIN, "--no-invite-required",
                 "--crawl", relay_url],
                tmp_path / f"pds{i}.log",
            )  # fmt: skip
            services.append(pds)
            wait_healthy(pds, f"http://localhost:{port}")
            pdses.append(Stack(f"http://localhost:{port}", plc_url, ADMIN, "atstack"))
        # both PDSes announced themselves
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            hosts = httpx.get(f"{relay_url}/xrpc/com.atproto.sync.listHosts", timeout=5).json()["hosts"]
            if len(hosts) == 2:
                break
            time.sleep(0.1)
        assert {h["hostname"] for h in hosts} == {p.pds_url.removeprefix("http://") for p in pdses}
        yield Network(plc_url, relay_url, pdses)
    finally:
        for service in reversed(services):
            service.stop()


def post(stack: Stack, account: Account, text: str) -> tuple[str, str, str]:
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
    resp = xrpc(stack, "POST", "com.atproto.repo.createRecord", account=account,
                body={"repo": account.did, "collection": "app.bsky.feed.post", "record": record})  # fmt: skip
    assert resp.status_code == 200, resp.text
    out = resp.json()
    return out["commit"]["rev"], out["commit"]["cid"], out["cid"]


def test_two_pdses_through_relay_validated_by_atproto_sync(
    network: Network, node_js: Path, node22: str
) -> None:
    accounts = [
        (stack, create_account(stack, f"rl{i}{j}")) for i, stack in enumerate(network.pdses) for j in range(2)
    ]
    written: dict[str, list[tuple[str, str, str]]] = {acc.did: [] for _, acc in accounts}
    for round_ in range(3):  # before the consumer: reaches it by replay
        for stack, acc in accounts:
            written[acc.did].append(post(stack, acc, f"{acc.handle} early {round_}"))

    def all_seen(lines: list[dict[str, Any]]) -> bool:
        got = {(e["did"], e["commit"]) for e in lines if e.get("kind") == "create"}
        return all((did, cid) in got for did, items in written.items() for _rev, cid, _ in items)

    consumer = NodeLines(node22, node_js, "firehose.mjs", network.relay_ws, network.plc_url, "0")
    stderr = ""
    try:
        assert consumer.wait_for(all_seen, timeout=60), consumer.lines[-10:]
        for round_ in range(5):  # live, interleaved across both PDSes
            for stack, acc in accounts:
                written[acc.did].append(post(stack, acc, f"{acc.handle} live {round_}"))
        assert consumer.wait_for(all_seen, timeout=60), consumer.lines[-10:]
        time.sleep(1.0)  # room for a duplicate to show up
    finally:
        stderr = consumer.stop()

    lines = consumer.lines
    assert consumer.junk == [], consumer.junk
    errors = [e for e in lines if e["kind"] == "error"]
    assert errors == [], (
        f"@atproto/sync reported errors: {json.dumps(errors, indent=1)[:4000]}\n{stderr[-2000:]}"
    )
    for _stack, acc in accounts:
        seen = [e for e in lines if e.get("did") == acc.did and e["kind"] == "create"]
        assert [(e["rev"], e["commit"], e["cid"]) for e in seen] == written[acc.did], acc.handle
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # the relay re-sequenced: one strictly increasing seq across both hosts
    all_seqs = [e["seq"] for e in lines if "seq" in e and e["kind"] != "error" and e.get("seq") is not None]
    assert all_seqs == sorted(all_seqs)
    kinds = {e["kind"] for e in lines}
    assert {"identity", "account", "create"} <= kinds
