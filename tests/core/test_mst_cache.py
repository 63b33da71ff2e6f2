"""The checked-node cache is bounded and evicts oldest first, one node per insert."""

from __future__ import annotations

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cbor import encode
from atstack.core.cid import cid_for_cbor
from atstack.core.mst import MST
from atstack.core.mst import node as node_module


def test_cache_is_bounded_and_keeps_the_newest() -> None:
    store = MemoryBlockStore()
    record = cid_for_cbor(encode({"x": 1}))
    tree = MST.empty(store)
    roots = []
    for i in range(12):  # twelve trees of one key: twelve distinct root nodes
        one = tree.put(f"app.bsky.feed.post/k{i:04d}", record)
        store.update(one.new_blocks().items())
        roots.append(one.root())
    node_module.set_cache_limit(4)
    try:
        for i, root in enumerate(roots):
            MST.load(store, root)  # reads (and caches) each root node
            assert len(node_module._cache) == min(i + 1, 4)  # one out per one in, never a mass drop
        cached = [node_module.cached_node(root) is not None for root in roots]
        assert cached == [False] * 8 + [True] * 4
    finally:
        node_module.set_cache_limit(65536)
