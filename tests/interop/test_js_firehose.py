"""Our ``subscribeRepos``, consumed by Bluesky's ``@atproto/sync`` ``Firehose`` with validation on.

``js/firehose.mjs`` subscribes from cursor 0 (so the first writes arrive by replay) and stays connected (so
the later ones arrive live), verifying every frame against the lexicon and every commit's ops against the
signed commit with the key from the PLC directory. The test makes creates, updates, deletes and multi-op
``applyWrites`` across two accounts and checks that each write came out exactly once, in per-repo order,
with the CIDs and revs our write responses gave, and that the consumer reported no error at all.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop_support import Account, NodeLines, Stack, create_account, xrpc

POST = "app.bsky.feed.post"
NOTE = "com.example.interop.note"
APPLY = "com.atproto.repo.applyWrites"

Op = tuple[str, str, str | None]  # (create|update|delete, collection/rkey, record CID or None)


@dataclass(slots=True)
class Commit:
    did: str
    rev: str | None
    cid: str | None
    ops: list[Op]
    texts: dict[str, str]


def _commit_of(resp: dict[str, Any]) -> tuple[str | None, str | None]:
    commit = resp.get("commit") or {}
    return commit.get("rev"), commit.get("cid")


def _ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return resp.json()


def _path(uri: str) -> str:
    return uri.split("/", 3)[3]


def create(stack: Stack, acc: Account, collection: str, text: str) -> Commit:
    record = {"$type": collection, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
    out = _ok(
        xrpc(
            stack,
            "POST",
            "com.atproto.repo.createRecord",
            account=acc,
            body={"repo": acc.did, "collection": collection, "record": record},
        )
    )
    path = _path(out["uri"])
    return Commit(acc.did, *_commit_of(out), [("create", path, out["cid"])], {path: text})


def update(stack: Stack, acc: Account, path: str, text: str) -> Commit:
    collection, rkey = path.split("/")
    record = {"$type": collection, "text": text, "createdAt": "2025-01-02T00:00:00.000Z"}
    out = _ok(
        xrpc(
            stack,
            "POST",
            "com.atproto.repo.putRecord",
            account=acc,
            body={"repo": acc.did, "collection": collection, "rkey": rkey, "record": record},
        )
    )
    assert _path(out["uri"]) == path
    return Commit(acc.did, *_commit_of(out), [("update", path, out["cid"])], {path: text})


def delete(stack: Stack, acc: Account, path: str) -> Commit:
    collection, rkey = path.split("/")
    out = _ok(
        xrpc(
            stack,
            "POST",
            "com.atproto.repo.deleteRecord",
            account=acc,
            body={"repo": acc.did, "collection": collection, "rkey": rkey},
        )
    )
    return Commit(acc.did, *_commit_of(out), [("delete", path, None)], {})


def apply_writes(stack: Stack, acc: Account, writes: list[tuple[str, str, str | None]]) -> Commit:
    """``writes``: (create, collection, text) | (update, path, text) | (delete, path, None), in one commit."""
    body_writes: list[dict[str, Any]] = []
    for action, target, text in writes:
        if action == "create":
            record = {"$type": target, "text": text, "createdAt": "2025-01-03T00:00:00.000Z"}
            body_writes.append({"$type": f"{APPLY}#create", "collection": target, "value": record})
        else:
            collection, rkey = target.split("/")
            item: dict[str, Any] = {"$type": f"{APPLY}#{action}", "collection": collection, "rkey": rkey}
            if action == "update":
                item["value"] = {"$type": collection, "text": text, "createdAt": "2025-01-03T00:00:00.000Z"}
            body_writes.append(item)
    out = _ok(xrpc(stack, "POST", APPLY, account=acc, body={"repo": acc.did, "writes": body_writes}))
    results = out["results"]
    assert len(results) == len(writes)
    ops: list[Op] = []
    texts: dict[str, str] = {}
    for (action, target, text), result in zip(writes, results, strict=True):
        assert result["$type"] == f"{APPLY}#{action}Result", result
        if action == "delete":
            ops.append(("delete", target, None))
            continue
        path = _path(result["uri"])
        ops.append((action, path, result["cid"]))
        texts[path] = text or ""
    return Commit(acc.did, *_commit_of(out), ops, texts)


def _ops_seen(lines: list[dict[str, Any]], dids: set[str]) -> list[dict[str, Any]]:
    return [e for e in lines if e.get("did") in dids and e["kind"] in ("create", "update", "delete")]


def _all_seen(expected: list[Commit]) -> Callable[[list[dict[str, Any]]], bool]:
    want = {(c.did, op[0], op[1], op[2]) for c in expected for op in c.ops}
    dids = {c.did for c in expected}

    def done(lines: list[dict[str, Any]]) -> bool:
        got = {(e["did"], e["kind"], e["path"], e["cid"]) for e in _ops_seen(lines, dids)}
        return want <= got

    return done


def test_firehose_validated_by_atproto_sync(stack: Stack, node_js: Path, node22: str) -> None:
    alice, bob = create_account(stack, "fha"), create_account(stack, "fhb")
    commits: list[Commit] = []

    # Before subscribing: these must come by replay from cursor 0.
    for i in range(3):
        commits.append(create(stack, alice, POST, f"alice early {i}"))
        commits.append(create(stack, bob, NOTE if i == 1 else POST, f"bob early {i}"))
    a1, a2, a3 = (c.ops[0][1] for c in commits[0::2])
    b1, b2, _ = (c.ops[0][1] for c in commits[1::2])

    consumer = NodeLines(node22, node_js, "firehose.mjs", stack.ws_url, stack.plc_url, "0")
    stderr = ""
    try:
        replayed = consumer.wait_for(_all_seen(commits), timeout=90)
        assert replayed, f"replayed events missing; got {consumer.lines[-20:]}"

        # Live: interleaved across the two repos.
        commits.append(a4 := create(stack, alice, POST, "alice live 4"))
        commits.append(create(stack, bob, POST, "bob live 4"))
        commits.append(update(stack, alice, a1, "alice 1 edited"))
        commits.append(delete(stack, bob, b2))
        commits.append(delete(stack, alice, a3))
        commits.append(update(stack, bob, b1, "bob 1 edited"))
        a4_path = a4.ops[0][1]
        commits.append(
            apply_writes(
                stack,
                alice,
                [
                    ("create", NOTE, "alice batch new"),
                    ("update", a2, "alice 2 batch"),
                    ("delete", a4_path, None),
                ],
            )
        )
        commits.append(
            apply_writes(stack, bob, [("create", POST, "bob batch x"), ("create", NOTE, "bob batch y")])
        )
        for i in range(5):
            commits.append(create(stack, alice, POST, f"alice burst {i}"))
            commits.append(create(stack, bob, POST, f"bob burst {i}"))

        live = consumer.wait_for(_all_seen(commits), timeout=60)
        time.sleep(1.5)  # room for a duplicate to show up
    finally:
        stderr = consumer.stop()

    lines = consumer.lines
    errors = [e for e in lines if e["kind"] == "error"]
    assert errors == [], (
        f"@atproto/sync reported errors: {json.dumps(errors, indent=1)[:6000]}\n{stderr[-3000:]}"
    )
    assert consumer.junk == [], consumer.junk
    assert live, f"live events missing; last lines: {lines[-20:]}"
    assert lines[0]["kind"] == "started" and lines[-1]["kind"] == "stopped", (lines[:2], lines[-2:], stderr)

    for acc in (alice, bob):
        mine = [c for c in commits if c.did == acc.did]
        seen = _ops_seen(lines, {acc.did})
        # Exactly once, nothing extra.
        keys = [(e["kind"], e["path"], e["cid"]) for e in seen]
        assert len(keys) == len(set(keys)), f"duplicate events for {acc.handle}: {keys}"
        assert sorted(keys, key=str) == sorted((op for c in mine for op in c.ops), key=str)

        # Per-repo order: one group of events per commit, in the order the writes were acknowledged.
        groups: list[list[dict[str, Any]]] = []
        for e in seen:
            if groups and groups[-1][0]["seq"] == e["seq"]:
                groups[-1].append(e)
            else:
                groups.append([e])
        assert len(groups) == len(mine)
        seqs = [g[0]["seq"] for g in groups]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        revs = [g[0]["rev"] for g in groups]
        assert revs == sorted(revs) and len(set(revs)) == len(revs)
        for group, commit in zip(groups, mine, strict=True):
            assert sorted(((e["kind"], e["path"], e["cid"]) for e in group), key=str) == sorted(
                commit.ops, key=str
            )
            assert len({(e["rev"], e["commit"]) for e in group}) == 1
            if commit.rev is not None:
                assert group[0]["rev"] == commit.rev
            if commit.cid is not None:
                assert group[0]["commit"] == commit.cid
            for e in group:
                if e["kind"] != "delete":
                    assert e["text"] == commit.texts[e["path"]]

    # Account creation announced each new repo (identity and account events, validated like the rest).
    by_kind: dict[str, set[str]] = defaultdict(set)
    for e in lines:
        by_kind[e["kind"]].add(e.get("did", ""))
    for acc in (alice, bob):
        assert acc.did in by_kind["identity"], f"no #identity event for {acc.did}"
        assert acc.did in by_kind["account"], f"no #account event for {acc.did}"
