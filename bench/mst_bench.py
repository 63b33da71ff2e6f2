"""MST benchmark: bulk build, one write (put + root + new_blocks), full verification, diff and inversion.

Run: ``.venv/bin/python bench/mst_bench.py [--records N]``; ``run()`` returns the figures as a dict. Keys are
random TID rkeys under a few collections, as in a real account; every record points at the same CID (values
do not change MST work). Throughputs are the best of three runs, latencies the median of many.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cid import CID, cid_for_cbor
from atstack.core.mst import MST, diff, invert_ops, proof_blocks, verify_tree
from atstack.core.mst.node import clear_node_cache

COLLECTIONS = ("app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow", "app.bsky.feed.repost")
_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def random_tid(rng: random.Random) -> str:
    value = rng.getrandbits(63)
    return "".join(_B32[(value >> (60 - 5 * i)) & 31] for i in range(13))


def random_keys(rng: random.Random, n: int) -> list[str]:
    keys: set[str] = set()
    while len(keys) < n:
        keys.add(f"{rng.choice(COLLECTIONS)}/{random_tid(rng)}")
    return list(keys)


def median_us(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def best_s(fn: Callable[[], object], repeat: int = 3) -> float:
    """Fastest of a few runs: throughput figures on a shared machine, without the neighbours' noise."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(records: int = 100_000, writes: int = 300, seed: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    value: CID = cid_for_cbor(b"\xa1ete")
    keys = random_keys(rng, records)
    items = [(k, value) for k in keys]
    out: dict[str, float] = {}

    store = MemoryBlockStore()
    built: list[MST] = []

    def build() -> None:
        tree = MST.from_items(store, items)
        tree.root()
        tree.new_blocks()
        built.append(tree)

    out["build_records_per_s"] = records / best_s(build)
    tree = built[-1]
    root = tree.root()
    blocks = tree.new_blocks()
    out["nodes"] = len(blocks)
    store.update(blocks.items())

    # One write on the in-memory tree (the PDS keeps its tree between writes).
    extra = random_keys(rng, writes)
    other = cid_for_cbor(b"\xa1etx")
    it = iter(extra)

    def write_in_memory() -> None:
        t = tree.put(next(it), other)
        t.root()
        t.new_blocks()

    out["put_root_new_blocks_us"] = median_us(write_in_memory, writes)

    # The same write on a tree opened from the store (cold path of a request, node cache warm).
    loaded = MST.load(store, root)
    it = iter(random_keys(rng, writes))

    def write_loaded() -> None:
        t = loaded.put(next(it), other)
        t.root()
        t.new_blocks()

    out["put_loaded_us"] = median_us(write_loaded, writes)

    assert verify_tree(store, root) == records
    out["verify_records_per_s"] = records / best_s(lambda: verify_tree(store, root))

    def scan_cold() -> None:
        clear_node_cache()
        assert sum(1 for _ in MST.load(store, root).items()) == records

    out["items_cold_records_per_s"] = records / best_s(scan_cold)
    out["items_records_per_s"] = records / best_s(lambda: sum(1 for _ in MST.load(store, root).items()))

    # A relay's work per commit: diff of a 3-op commit, its proof, inversion against a proof-only store.
    after = tree.put(extra[0], other).put(extra[1], other).delete(keys[0])
    after_root = after.root()
    store.update(after.new_blocks().items())
    ops = diff(store, root, after_root)
    out["diff_us"] = median_us(lambda: diff(store, root, after_root), 50)
    paths = [op.path for op in ops]
    proof = proof_blocks(store, after_root, paths)
    out["proof_us"] = median_us(lambda: proof_blocks(store, after_root, paths), 50)

    def invert() -> None:
        assert invert_ops(MemoryBlockStore(dict(proof)), after_root, ops) == root

    out["invert_us"] = median_us(invert, 50)

    def invert_cold() -> None:
        clear_node_cache()  # every proof node decoded and checked once, as for a repo not seen before
        invert()

    out["invert_cold_us"] = median_us(invert_cold, 50)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    res = run(args.records)
    print(f"MST of {args.records:,} records ({res['nodes']:,.0f} nodes)")
    print(f"  bulk build (from_items + root + new_blocks): {res['build_records_per_s']:>12,.0f} records/s")
    print(
        f"  put + root + new_blocks, in-memory tree:     {res['put_root_new_blocks_us']:>12,.1f} µs (median)"
    )
    print(f"  put + root + new_blocks, tree from store:    {res['put_loaded_us']:>12,.1f} µs (median)")
    print(f"  verify_tree (strict, no cache):              {res['verify_records_per_s']:>12,.0f} records/s")
    print(f"  items() scan, nodes cached:                  {res['items_records_per_s']:>12,.0f} records/s")
    print(
        f"  items() scan, every node read and checked:   {res['items_cold_records_per_s']:>12,.0f} records/s"
    )
    print(f"  diff of a 3-op commit:                       {res['diff_us']:>12,.1f} µs")
    print(f"  proof_blocks for 3 keys:                     {res['proof_us']:>12,.1f} µs")
    print(
        f"  invert_ops, 3 ops (warm / cold node cache):  {res['invert_us']:>8,.1f} / {res['invert_cold_us']:,.1f} µs"
    )


if __name__ == "__main__":
    main()
