"""The checked-node cache is bounded and evicts oldest first, one node per insert; verified slices bypass it."""

from __future__ import annotations

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cbor import encode
from atstack.core.cid import cid_for_cbor
from atstack.core.crypto import generate_private_key
from atstack.core.mst import MST
from atstack.core.mst import node as node_module
from atstack.core.repo import RecordWrite, Repo
from atstack.core.repo_verify import verify_commit_slice


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


def test_verified_slices_bypass_the_cache() -> None:
    """A firehose commit's slice is read once: its nodes are decoded, checked and not kept (the relay's GC
    cost came from keeping them), with or without a prevData inversion."""
    key = generate_private_key()
    did = "did:plc:cachetest00000000000000"
    repo, _ = Repo.create(MemoryBlockStore(), did, key)
    post = "app.bsky.feed.post"
    first = repo.apply_writes([RecordWrite.create(post, "3l2aaaaaaaa22", encode({"x": 1}))], key)
    second = repo.apply_writes([RecordWrite.create(post, "3l2aaaaaaab22", encode({"x": 2}))], key)
    node_module.clear_node_cache()
    for cd in (first, second):
        for prev in (cd.prev_data, None):  # inversion, then the plain lookups
            commit = verify_commit_slice(cd.car_slice, cd.ops, prev, did=did, public_key=key.public_key)
            assert commit == cd.commit
    assert len(node_module._cache) == 0
    MST.load(repo.store, second.data)  # a repo's own store still caches
    assert node_module.cached_node(second.data) is not None
