"""Our Jetstream consumed by the npm client ``@skyware/jetstream`` (unchanged; nobody here wrote it).

``atstack jetstream`` runs as a child process subscribed to the session's atstack PDS. ``js/jetstream_client.mjs``
subscribes with collection and DID filters and prints the events the package hands out. The tests make
writes on the PDS and check that each client receives exactly the matching events — identity and account
events bypassing the collection filter but not the DID filter — and that ``updateOptions`` (the package's
``options_update``) switches the filter on the live connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_support import Account, NodeLines, Stack, create_account, create_record, free_port

POST = "app.bsky.feed.post"
NOTE = "com.example.interop.note"


@pytest.fixture(scope="module")
def jetstream(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``atstack jetstream`` subscribed to the session PDS; yields its base URL."""
    base = tmp_path_factory.mktemp("jetstream")
    port = free_port()
    log = base / "jetstream.log"
    args = [
        sys.executable, "-c", "from atstack.cli.jetstream import jetstream; jetstream()",
        "--data-dir", str(base / "data"), "--port", str(port), "--upstream", stack.ws_url,
    ]  # fmt: skip
    with open(log, "wb") as sink:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/xrpc/_health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "jetstream not healthy:\n" + log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def subscribers(url: str) -> int:
    return int(httpx.get(f"{url}/status", timeout=5).json()["subscribers"])


class Client(NodeLines):
    """``jetstream_client.mjs`` as a child process: every wait must succeed, and no line may be junk."""

    def __init__(self, node: str, js_dir: Path, url: str, options: dict[str, Any]) -> None:
        subscribe = url.replace("http://", "ws://") + "/subscribe"
        super().__init__(node, js_dir, "jetstream_client.mjs", subscribe, json.dumps(options))

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20) -> bool:
        if not super().wait_for(done, timeout):
            dead = self.proc.poll() is not None and self.proc.stderr
            raise AssertionError(
                f"client state: {self.lines}\nstderr: {self.proc.stderr.read() if dead else ''}"
            )
        assert self.junk == [], self.junk
        return True

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if line["type"] == kind]


def post(stack: Stack, acc: Account, collection: str, text: str) -> str:
    record = {"$type": collection, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
    return create_record(stack, acc, collection, record)["cid"]


def wait_subscribers(url: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while subscribers(url) < n:
        assert time.monotonic() < deadline, "subscribers did not connect"
        time.sleep(0.05)
    time.sleep(0.3)  # from connected to receiving live events is one task switch on the server


def test_skyware_filters_receive_exactly_the_matching_events(
    node22: str, node_js: Path, stack: Stack, jetstream: str
) -> None:
    alice = create_account(stack, "jsalice")
    bob = create_account(stack, "jsbob")
    before = subscribers(jetstream)
    posts = Client(node22, node_js, jetstream, {"wantedCollections": [POST]})
    bobs = Client(node22, node_js, jetstream, {"wantedDids": [bob.did]})
    alice_notes = Client(
        node22, node_js, jetstream, {"wantedCollections": ["com.example.*"], "wantedDids": [alice.did]}
    )
    clients = (posts, bobs, alice_notes)
    try:
        wait_subscribers(jetstream, before + 3)
        written: list[tuple[str, str, str]] = []
        for i in range(2):
            for acc in (alice, bob):
                for col in (POST, NOTE):
                    written.append((acc.did, col, post(stack, acc, col, f"{col} {i}")))
        carol = create_account(stack, "jscarol")  # identity + account events, after everyone subscribed

        expect = {
            posts: [c for d, col, c in written if col == POST],
            bobs: [c for d, col, c in written if d == bob.did],
            alice_notes: [c for d, col, c in written if d == alice.did and col == NOTE],
        }
        for client, cids in expect.items():
            n = len(cids)
            client.wait_for(lambda lines, n=n: sum(x["type"] == "commit" for x in lines) >= n)
        posts.wait_for(lambda lines: any(x["type"] == "account" and x["did"] == carol.did for x in lines))
        time.sleep(0.5)  # anything extra would arrive now
        for client, cids in expect.items():
            assert [c["cid"] for c in client.of("commit")] == cids
            assert not client.of("error")
        # identity/account events bypass wantedCollections ...
        assert [x["did"] for x in posts.of("identity")] == [carol.did]
        assert [(x["did"], x["active"]) for x in posts.of("account")] == [(carol.did, True)]
        # ... but obey wantedDids
        assert bobs.of("identity") == [] and bobs.of("account") == []
        assert alice_notes.of("identity") == [] and alice_notes.of("account") == []
        assert all(c["did"] == bob.did for c in bobs.of("commit"))
    finally:
        for client in clients:
            client.stop()


def test_skyware_update_options_switches_filter_live(
    node22: str, node_js: Path, stack: Stack, jetstream: str
) -> None:
    alice = create_account(stack, "jsupd")
    before = subscribers(jetstream)
    client = Client(node22, node_js, jetstream, {"wantedCollections": [POST], "wantedDids": [alice.did]})
    try:
        wait_subscribers(jetstream, before + 1)
        # n1 first: events stay in order, so once p1 has arrived n1 has been filtered out, not left in flight
        # to meet the new filter.
        post(stack, alice, NOTE, "n1 (not wanted yet)")
        p1 = post(stack, alice, POST, "p1")
        client.wait_for(lambda lines: len([x for x in lines if x["type"] == "commit"]) >= 1)
        client.send({"updateOptions": {"wantedCollections": [NOTE], "wantedDids": [alice.did]}})
        client.wait_for(lambda lines: any(x["type"] == "updated" for x in lines))
        time.sleep(0.3)  # the message travels to the server, which applies it on receipt
        post(stack, alice, POST, "p2 (not wanted any more)")
        n2 = post(stack, alice, NOTE, "n2")
        client.wait_for(lambda lines: len([x for x in lines if x["type"] == "commit"]) >= 2)
        time.sleep(0.5)
        commits = client.of("commit")
        assert [c["cid"] for c in commits] == [p1, n2]
        assert [c["text"] for c in commits] == ["p1", "n2"]
        assert [c["collection"] for c in commits] == [POST, NOTE]
        assert not client.of("error")
    finally:
        client.stop()


def test_skyware_package_is_pinned() -> None:
    lock = json.loads((Path(__file__).parent / "js" / "package-lock.json").read_text())
    assert "node_modules/@skyware/jetstream" in lock["packages"]
    assert os.path.exists(Path(__file__).parent / "js" / "jetstream_client.mjs")
