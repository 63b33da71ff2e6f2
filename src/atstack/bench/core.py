"""``atstack bench core``: the protocol core on one core — DRISL, signatures, CAR, MST, commits, verification.

Targets (issue "Foundation"): one write to a 100k-record repo ≤ 1 ms median; full-repo verification
≥ 100,000 records/s; CBOR decode within 1.5× of the raw library call.
"""

from __future__ import annotations

import os
import random
import time

import cbrrr
import libipld

from atstack.bench.harness import Report, best_rates, peak_rss_mib, percentiles, rate, timed_samples
from atstack.core import cbor
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import read_car
from atstack.core.cid import cid_for_cbor, cid_for_raw
from atstack.core.commit import decode_commit, sign_commit
from atstack.core.crypto import generate_private_key
from atstack.core.mst import MST
from atstack.core.mst.node import decode_node
from atstack.core.repo import RecordWrite, Repo
from atstack.core.repo_verify import verify_repo_car
from atstack.core.tid import TIDClock

COLLECTIONS = ("app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow", "app.bsky.feed.repost")
DID = "did:plc:benchbenchbenchbenchbenc"


def sample_post(i: int) -> dict:
    # A strongRef carries its CID as a string (app.bsky schema), so a reply post has no CID links.
    ref = {
        "uri": f"at://{DID}/app.bsky.feed.post/3kabcdefghij2",
        "cid": cid_for_cbor(b"parent %d" % i).encode(),
    }
    return {
        "$type": "app.bsky.feed.post",
        "text": f"post number {i}: the quick brown fox jumps over the lazy dog 🦊",
        "createdAt": "2026-11-25T09:00:00.000Z",
        "langs": ["en"],
        "reply": {"root": ref, "parent": ref},
    }


def sample_image_post() -> dict:
    def image(n: int) -> dict:
        blob = {"$type": "blob", "ref": cid_for_raw(b"image %d" % n), "mimeType": "image/jpeg", "size": 91234}
        return {"alt": f"picture {n}", "image": blob, "aspectRatio": {"width": 1200, "height": 800}}

    return {
        "$type": "app.bsky.feed.post",
        "text": "two pictures from the walk",
        "createdAt": "2026-11-25T09:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [image(1), image(2)]},
    }


def build_repo(n: int, key, seed: int = 7) -> tuple[MemoryBlockStore, Repo, float]:
    """A signed repository of ``n`` records; returns the store, the repo and the build rate (records/s)."""

    rng = random.Random(seed)
    clock = TIDClock(clock_id=1)
    blocks: dict = {}
    items = []
    records = [cbor.encode(sample_post(i)) for i in range(n)]
    t0 = time.perf_counter()
    for block in records:
        cid = cid_for_cbor(block)
        blocks[cid] = block
        items.append((f"{rng.choice(COLLECTIONS)}/{clock.next()}", cid))
    store = MemoryBlockStore(blocks)
    tree = MST.from_items(store, items)
    data = tree.root()
    store.update(tree.new_blocks().items())
    _commit, block, commit_cid = sign_commit(DID, data, clock.next(), key)
    store.put_block(commit_cid, block)
    elapsed = time.perf_counter() - t0
    return store, Repo.load(store, commit_cid), n / elapsed


def run(records: int = 100_000, seconds: float = 1.0) -> Report:
    report = Report("atstack bench core")
    report.header()

    # --- DRISL: ours vs the raw library call (and libipld for comparison) ---
    post = cbor.encode(sample_post(1))
    plain = cbor.encode({k: v for k, v in sample_post(1).items() if k != "reply"})
    key = generate_private_key("k256")
    store, repo, build_rate = build_repo(records, key)
    # A typical leaf-level MST node (a few entries, all with CID links).
    node_cid, node_block = next(
        (c, b) for c, b in store.items() if b[:2] == b"\xa2\x61" and len(cbor.decode_trusted(b)["e"]) >= 4
    )
    node_entries = len(cbor.decode_trusted(node_block)["e"])
    commit_block = store.get(repo.commit_cid)
    assert commit_block is not None
    print("  DRISL (ops/s)")
    image_post = cbor.encode(sample_image_post())
    for name, block, ours in (
        ("post record (plain)", plain, cbor.decode),
        ("post record (reply)", post, cbor.decode),
        ("post record with 2 image blobs", image_post, cbor.decode),
        (f"MST node ({node_entries} entries)", node_block, cbor.decode),
        ("commit", commit_block, cbor.decode),
        ("MST node, strict shape + hash (decode_node)", node_block, lambda b: decode_node(node_cid, b, None)),
        ("commit, strict shape (decode_commit)", commit_block, decode_commit),
    ):
        mine, raw, ipld = best_rates(
            [
                lambda b=block, f=ours: f(b),
                lambda b=block: cbrrr.decode_dag_cbor(b),
                lambda b=block: libipld.decode_dag_cbor(b),
            ],
            seconds=seconds * 2,
        )
        report.add(
            f"decode {name}", mine, "ops/s", f"cbrrr {raw:,.0f}, ×{raw / mine:.2f}; libipld {ipld:,.0f}"
        )
    decoded_post = cbor.decode(post)
    report.add("encode post record", rate(lambda: cbor.encode(decoded_post), seconds=seconds), "ops/s")
    decoded_node = cbor.decode_trusted(node_block)
    report.add("encode MST node", rate(lambda: cbor.encode(decoded_node), seconds=seconds), "ops/s")

    # --- signatures ---
    print("  signatures (ops/s)")
    msg = os.urandom(200)
    for curve in ("k256", "p256"):
        k = generate_private_key(curve)
        sig = k.sign(msg)
        pub = k.public_key
        report.add(f"{curve} sign", rate(lambda k=k: k.sign(msg), seconds=seconds), "ops/s")
        report.add(f"{curve} verify", rate(lambda p=pub, s=sig: p.verify(msg, s), seconds=seconds), "ops/s")

    # --- repository ---
    print(f"  repository of {records:,} records")
    report.add("build repo (records → MST → signed commit)", build_rate, "records/s")
    car = repo.export_car()
    mb = len(car) / 1e6
    report.add(
        "CAR parse + hash check",
        rate(lambda: read_car(car), seconds=seconds, batch=1) * mb,
        "MB/s",
        f"{mb:.1f} MB CAR",
    )
    clock = TIDClock(clock_id=2)
    counter = iter(range(10**9))

    def one_create() -> None:
        i = next(counter)
        repo.apply_writes(
            [RecordWrite.create("app.bsky.feed.post", clock.next(), cbor.encode(sample_post(i)))], key
        )

    for _ in range(20):
        one_create()
    lat = percentiles(timed_samples(one_create, 500))
    report.add(
        "createRecord on the repo (MST + signed commit + CAR slice)",
        lat["p50"],
        "µs p50",
        f"p90 {lat['p90']:.0f} µs, p99 {lat['p99']:.0f} µs",
    )
    car = repo.export_car()
    pub = key.public_key
    verified = verify_repo_car(car, did=DID, public_key=pub)
    n_records = verified.record_count
    # The target is the repository check itself (what a relay runs); decoding every record is an extra a
    # PDS import asks for (check_records, on by default), so it is reported on its own row.
    report.add(
        "full verification of the repo CAR",
        rate(lambda: verify_repo_car(car, did=DID, public_key=pub, check_records=False), seconds=seconds * 2)
        * n_records,
        "records/s",
        "every block hashed, MST checked, records present, signature",
    )
    report.add(
        "  … and every record decoded (check_records)",
        rate(lambda: verify_repo_car(car, did=DID, public_key=pub, check_records=True), seconds=seconds * 2)
        * n_records,
        "records/s",
        "plus strict DRISL decode of each record",
    )
    report.add("peak RSS", peak_rss_mib(), "MiB")
    return report
