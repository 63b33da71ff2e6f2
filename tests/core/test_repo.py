from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectors
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import read_car, repo_blocks_in_order, write_car
from atstack.core.cbor import encode
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw
from atstack.core.commit import decode_commit, sign_commit
from atstack.core.crypto import PrivateKey, generate_private_key
from atstack.core.mst import EMPTY_ROOT, MST, diff, invert_ops, proof_blocks
from atstack.core.repo import CommitData, RecordExists, RecordNotFound, RecordWrite, Repo, RepoError
from atstack.core.repo_diff import Overlay, TrustedNodes, covering_proof, tree_delta
from atstack.core.repo_op import RepoOp
from atstack.core.repo_verify import RepoVerifyError, verify_commit_slice, verify_repo_car
from atstack.core.syntax import InvalidSyntax, split_repo_path

DID = "did:plc:abcdefghijklmnopqrstuvwx"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
KEY = generate_private_key()


def _rec(text: str, coll: str = POST) -> bytes:
    return encode({"$type": coll, "text": text, "createdAt": "2025-01-01T00:00:00Z"})


def _new_repo() -> tuple[MemoryBlockStore, Repo, CommitData]:
    store = MemoryBlockStore()
    repo, cd = Repo.create(store, DID, KEY)
    return store, repo, cd


def _reachable(store: MemoryBlockStore, commit: CID) -> set[CID]:
    return {cid for cid, _ in repo_blocks_in_order(store, commit)}


def _check_slice(cd: CommitData, key: PrivateKey = KEY) -> None:
    commit = verify_commit_slice(cd.car_slice, cd.ops, cd.prev_data, did=DID, public_key=key.public_key)
    assert commit == cd.commit


def test_create_empty_repo() -> None:
    store, repo, cd = _new_repo()
    assert cd.data == EMPTY_ROOT == repo.data
    assert cd.since is None and cd.prev_data is None and cd.ops == []
    assert repo.did == DID and repo.rev == cd.rev and repo.commit_cid == cd.cid
    car = read_car(cd.car_slice)
    assert car.roots == [cd.cid]
    assert set(car.blocks) == {cd.cid, EMPTY_ROOT} == set(cd.new_blocks)
    assert all(store.has(c) for c in cd.new_blocks)
    _check_slice(cd)
    v = verify_repo_car(repo.export_car(), did=DID, public_key=KEY.public_key)
    assert v.record_count == 0 and v.records == {} and v.data_cid == EMPTY_ROOT


def test_writes_reads_and_commit_data() -> None:
    store, repo, first = _new_repo()
    writes = [RecordWrite.create(POST, f"3l2aaaaaaaa{c}2", _rec(c)) for c in "abcdefg"]
    writes.append(RecordWrite.create("app.bsky.actor.profile", "self", _rec("me", "app.bsky.actor.profile")))
    cd = repo.apply_writes(writes, KEY)
    assert cd.since == first.rev and cd.prev_data == EMPTY_ROOT and cd.rev > first.rev
    assert [op.action for op in cd.ops] == ["create"] * 8
    assert repo.rev == cd.rev and repo.commit_cid == cd.cid and repo.data == cd.data
    assert decode_commit(cd.commit_block) == cd.commit and cid_for_cbor(cd.commit_block) == cd.cid
    assert sorted(cd.ops, key=lambda o: o.path) == diff(store, cd.prev_data, cd.data)
    _check_slice(cd)
    got = repo.get_record(POST, "3l2aaaaaaaab2")
    assert got == (cid_for_cbor(_rec("b")), _rec("b"))
    assert repo.get_record(POST, "3l2aaaaaaaaz2") is None
    assert repo.get_record_cid("app.bsky.actor.profile", "self") == cid_for_cbor(
        _rec("me", "app.bsky.actor.profile")
    )

    listed = repo.list_records(POST)
    assert [r[0] for r in listed] == [f"3l2aaaaaaaa{c}2" for c in "abcdefg"]
    assert listed[0][2] == _rec("a")
    assert [r[0] for r in repo.list_records(POST, limit=2, after="3l2aaaaaaaab2")] == [
        "3l2aaaaaaaac2",
        "3l2aaaaaaaad2",
    ]
    assert [r[0] for r in repo.list_records(POST, limit=3, reverse=True)] == [
        "3l2aaaaaaaag2",
        "3l2aaaaaaaaf2",
        "3l2aaaaaaaae2",
    ]
    assert [r[0] for r in repo.list_records(POST, reverse=True, after="3l2aaaaaaaab2")] == ["3l2aaaaaaaaa2"]
    assert repo.list_records(LIKE) == []
    assert next(p for p, _ in repo.records()) == "app.bsky.actor.profile/self"

    before = _reachable(store, repo.commit_cid)
    old_commit = repo.commit_cid
    cd2 = repo.apply_writes(
        [
            RecordWrite.update(POST, "3l2aaaaaaaaa2", _rec("a2")),
            RecordWrite.delete(POST, "3l2aaaaaaaab2"),
            RecordWrite.create(LIKE, "3l2aaaaaaaaa2", _rec("like", LIKE)),
        ],
        KEY,
    )
    assert cd2.since == cd.rev and cd2.prev_data == cd.data
    assert cd2.ops == [
        RepoOp("update", f"{POST}/3l2aaaaaaaaa2", cid_for_cbor(_rec("a2")), cid_for_cbor(_rec("a"))),
        RepoOp("delete", f"{POST}/3l2aaaaaaaab2", None, cid_for_cbor(_rec("b"))),
        RepoOp("create", f"{LIKE}/3l2aaaaaaaaa2", cid_for_cbor(_rec("like", LIKE))),
    ]
    _check_slice(cd2)
    slice_blocks = read_car(cd2.car_slice).blocks
    assert cid_for_cbor(_rec("a2")) in slice_blocks and cid_for_cbor(_rec("like", LIKE)) in slice_blocks
    assert cid_for_cbor(_rec("b")) not in slice_blocks and cid_for_cbor(_rec("a")) not in slice_blocks
    after = _reachable(store, repo.commit_cid)
    # removed = exactly what the old state had and the new one lacks; new = exactly the reverse
    assert cd2.removed_cids == before - after
    assert old_commit in cd2.removed_cids
    assert set(cd2.new_blocks) == after - before
    assert set(cd2.new_blocks) <= set(slice_blocks)
    # every block in the slice is either new or part of the new tree's proof (no stale state)
    assert set(slice_blocks) <= after

    loaded = Repo.load(store, repo.commit_cid)
    assert list(loaded.records()) == list(repo.records()) and loaded.rev == repo.rev
    v = verify_repo_car(loaded.export_car(), did=DID, public_key=KEY.public_key)
    assert v.records == {"app.bsky.actor.profile": 1, LIKE: 1, POST: 6} and v.record_count == 8
    assert v.rev == repo.rev and v.commit_cid == repo.commit_cid
    assert [p for p, _, _ in v.iter_records()] == [p for p, _ in repo.records()]


def test_write_errors_leave_repo_unchanged() -> None:
    store, repo, _ = _new_repo()
    repo.apply_writes([RecordWrite.create(POST, "3l2aaaaaaaaa2", _rec("a"))], KEY)
    state = (repo.commit_cid, repo.rev, repo.data, len(store))
    bad_batches: list[tuple[type[Exception], list[RecordWrite]]] = [
        (RecordExists, [RecordWrite.create(POST, "3l2aaaaaaaaa2", _rec("x"))]),
        (RecordNotFound, [RecordWrite.update(POST, "3l2aaaaaaaab2", _rec("x"))]),
        (RecordNotFound, [RecordWrite.delete(POST, "3l2aaaaaaaab2")]),
        (RepoError, [RecordWrite.create(POST, "k", _rec("x")), RecordWrite.delete(POST, "k")]),
        (RepoError, [RecordWrite.create("not-an-nsid", "k", _rec("x"))]),
        (RepoError, [RecordWrite.create(POST, "..", _rec("x"))]),
        (RepoError, [RecordWrite(POST, "k", None, "create")]),  # type: ignore[arg-type]
        (RepoError, [RecordWrite.create(POST, "k", None)]),  # type: ignore[arg-type]
        (RepoError, [RecordWrite.create(POST, f"k{i}", _rec(str(i))) for i in range(201)]),
        (
            RepoError,
            [RecordWrite.create(POST, f"big{i}", encode({"b": b"x" * 900_000, "i": i})) for i in range(3)],
        ),
        # valid write followed by a failing one: the whole batch is refused
        (RecordNotFound, [RecordWrite.create(POST, "k2", _rec("y")), RecordWrite.delete(POST, "nope")]),
    ]
    for exc_type, batch in bad_batches:
        with pytest.raises(exc_type):
            repo.apply_writes(batch, KEY)
        assert (repo.commit_cid, repo.rev, repo.data, len(store)) == state
    with pytest.raises(RepoError, match="rev"):
        repo.apply_writes([], KEY, rev=repo.rev)
    with pytest.raises(RepoError, match="rev"):
        repo.apply_writes([], KEY, rev="not-a-tid")
    assert repo.get_record(POST, "k2") is None


def test_empty_commit_and_explicit_rev() -> None:
    _store, repo, _ = _new_repo()
    cd = repo.apply_writes([RecordWrite.create(POST, "a", _rec("a"))], KEY)
    empty = repo.apply_writes([], KEY, rev="7zzzzzzzzzzzz")
    assert empty.rev == "7zzzzzzzzzzzz" and empty.ops == [] and empty.data == cd.data
    assert empty.removed_cids == {cd.cid}
    _check_slice(empty)
    with pytest.raises(RepoVerifyError, match="empty commit"):
        verify_commit_slice(empty.car_slice, [], EMPTY_ROOT, did=DID, public_key=KEY.public_key)
    assert repo.data in read_car(empty.car_slice).blocks  # root node rides along for consumers
    assert repo.apply_writes([], KEY).rev > "7zzzzzzzzzzzz"  # the clock never goes below the repo's rev


def test_delete_everything_returns_to_empty_root() -> None:
    store, repo, _ = _new_repo()
    paths = [f"3l2aaaaaa{a}{b}22" for a in "abcd" for b in "abcdefghij"]
    repo.apply_writes([RecordWrite.create(POST, p, _rec(p)) for p in paths], KEY)
    before = _reachable(store, repo.commit_cid)
    cd = repo.apply_writes([RecordWrite.delete(POST, p) for p in paths], KEY)
    assert cd.data == EMPTY_ROOT
    _check_slice(cd)
    assert cd.removed_cids == before - _reachable(store, repo.commit_cid)


# ---- tampering -----------------------------------------------------------------------------------


def _populated() -> tuple[MemoryBlockStore, Repo, CommitData]:
    store, repo, _ = _new_repo()
    repo.apply_writes(
        [RecordWrite.create(POST, f"3l2aaaaaa{c}{d}22", _rec(c + d)) for c in "abcd" for d in "abcd"], KEY
    )
    cd = repo.apply_writes(
        [
            RecordWrite.create(POST, "3l2aaaaaaaz222", _rec("new")),
            RecordWrite.update(POST, "3l2aaaaaabb22", _rec("upd")),
            RecordWrite.delete(POST, "3l2aaaaaacc22"),
        ],
        KEY,
    )
    return store, repo, cd


def test_tampered_slices_fail() -> None:
    _store, _repo, cd = _populated()
    _check_slice(cd)
    car = read_car(cd.car_slice)
    pk = KEY.public_key
    other = cid_for_cbor(_rec("other"))

    def fails(car_bytes: bytes, ops: list[RepoOp], prev: CID | None, **kw: object) -> None:
        args = {"did": DID, "public_key": pk, **kw}
        with pytest.raises(RepoVerifyError):
            verify_commit_slice(car_bytes, ops, prev, **args)  # type: ignore[arg-type]

    # dropping any new MST node or any record must break the proof (records: the record-present check)
    dropped = 0
    for cid in cd.new_blocks:
        fails(write_car(car.roots, [(c, b) for c, b in car.blocks.items() if c != cid]), cd.ops, cd.prev_data)
        dropped += 1
    assert dropped >= 4
    fails(cd.car_slice, [RepoOp("create", cd.ops[0].path, other), *cd.ops[1:]], cd.prev_data)
    fails(cd.car_slice, [*cd.ops[:2], RepoOp("delete", cd.ops[2].path, None, other)], cd.prev_data)
    fails(cd.car_slice, cd.ops[:2], cd.prev_data)  # an op left out
    fails(cd.car_slice, [*cd.ops, RepoOp("delete", f"{POST}/3l2aaaaaadd22", None, other)], cd.prev_data)
    fails(cd.car_slice, cd.ops, cd.data)  # wrong prevData
    fails(cd.car_slice, cd.ops, cd.prev_data, public_key=generate_private_key().public_key)
    fails(cd.car_slice, cd.ops, cd.prev_data, did="did:plc:zzzzzzzzzzzzzzzzzzzzzzzz")
    fails(cd.car_slice[:-5], cd.ops, cd.prev_data)
    fails(b"garbage", cd.ops, cd.prev_data)
    fails(cd.car_slice, cd.ops, cd.prev_data, max_size=100)
    # a commit re-signed by another key over the same data
    _c, block, cid = sign_commit(DID, cd.data, cd.rev, generate_private_key())
    fails(
        write_car([cid], [(cid, block), *((c, b) for c, b in car.blocks.items() if c != cd.cid)]),
        cd.ops,
        cd.prev_data,
    )


# ---- property: every slice apply_writes makes verifies -------------------------------------------

_rkeys = st.sampled_from(
    [f"3l2aaaaaa{a}{b}22" for a in "abcdefgh" for b in "abcdefgh"] + ["self", "x:y", "a~b"]
)
_colls = st.sampled_from([POST, LIKE, "com.example.thing"])
_batch = st.lists(st.tuples(_colls, _rkeys, st.integers(0, 3), st.text(max_size=8)), min_size=0, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_batch, min_size=1, max_size=6))
def test_random_batches_always_verify(batches: list[list[tuple[str, str, int, str]]]) -> None:
    store, repo, _ = _new_repo()
    model: dict[str, bytes] = {}
    checked = 0
    for batch in batches:
        writes: list[RecordWrite] = []
        seen: set[str] = set()
        for coll, rkey, kind, text in batch:
            path = f"{coll}/{rkey}"
            if path in seen:
                continue
            seen.add(path)
            body = _rec(text + path, coll)
            if path in model:
                writes.append(
                    RecordWrite.delete(coll, rkey) if kind < 2 else RecordWrite.update(coll, rkey, body)
                )
            else:
                writes.append(RecordWrite.create(coll, rkey, body))
        before = _reachable(store, repo.commit_cid)
        cd = repo.apply_writes(writes, KEY)
        for w in writes:
            if w.action == "delete":
                del model[w.path]
            else:
                model[w.path] = w.record  # type: ignore[assignment]
        _check_slice(cd)
        # an update to identical bytes is an op but no change in the tree
        changed = sorted((op for op in cd.ops if op.cid != op.prev), key=lambda o: o.path)
        assert changed == diff(store, cd.prev_data, cd.data)
        after = _reachable(store, repo.commit_cid)
        assert cd.removed_cids == before - after
        assert {p: store.get(c) for p, c in repo.records()} == model
        checked += 1
    v = verify_repo_car(repo.export_car(), did=DID, public_key=KEY.public_key)
    assert v.record_count == len(model)
    assert checked == len(batches)


# ---- full CAR verification ------------------------------------------------------------------------


def test_verify_repo_car_failures() -> None:
    store, repo, _ = _populated()
    car = repo.export_car()
    v = verify_repo_car(car, did=DID, public_key=KEY.public_key)
    assert v.record_count == 16 and v.did == DID
    parsed = read_car(car)

    def without(pred: object) -> bytes:
        return write_car(parsed.roots, [(c, b) for c, b in parsed.blocks.items() if not pred(c)])  # type: ignore[operator]

    record_cid = repo.get_record_cid(POST, "3l2aaaaaaaa22")
    cases = {
        "missing record": without(lambda c: c == record_cid),
        "missing root node": without(lambda c: c == repo.data),
        "missing commit": without(lambda c: c == repo.commit_cid),
        "truncated": car[:-10],
        "garbage": b"\x00\x01\x02",
        "empty": b"",
    }
    for name, data in cases.items():
        with pytest.raises(RepoVerifyError):
            verify_repo_car(data)
            pytest.fail(name)
    with pytest.raises(RepoVerifyError, match="signature"):
        verify_repo_car(car, public_key=generate_private_key().public_key)
    with pytest.raises(RepoVerifyError, match="expected"):
        verify_repo_car(car, did="did:plc:zzzzzzzzzzzzzzzzzzzzzzzz")
    # no key given: structure only
    assert verify_repo_car(car).commit_cid == repo.commit_cid
    assert store.has(repo.commit_cid)


def _signed_car(items: list[tuple[str, CID]], extra: dict[CID, bytes]) -> bytes:
    tmp = MemoryBlockStore()
    mst = MST.from_items(tmp, items)
    root = mst.root()
    _c, block, cid = sign_commit(DID, root, "3l2aaaaaaaa22", KEY)
    return write_car([cid], [(cid, block), *mst.new_blocks().items(), *extra.items()])


def test_verify_repo_car_rejects_bad_keys_and_records() -> None:
    good = _rec("ok")
    good_cid = cid_for_cbor(good)
    assert verify_repo_car(_signed_car([(f"{POST}/a", good_cid)], {good_cid: good})).record_count == 1
    # a valid MST key that is not a repo path (the MST vectors use such keys)
    with pytest.raises(RepoVerifyError, match="repo path"):
        verify_repo_car(_signed_car([("A0/374913", good_cid)], {good_cid: good}))
    not_map = encode([1, 2])
    with pytest.raises(RepoVerifyError, match="not a map"):
        verify_repo_car(_signed_car([(f"{POST}/a", cid_for_cbor(not_map))], {cid_for_cbor(not_map): not_map}))
    floaty = b"\xa1aa\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00"
    with pytest.raises(RepoVerifyError, match="DRISL"):
        verify_repo_car(_signed_car([(f"{POST}/a", cid_for_cbor(floaty))], {cid_for_cbor(floaty): floaty}))
    assert (
        verify_repo_car(
            _signed_car([(f"{POST}/a", cid_for_cbor(floaty))], {cid_for_cbor(floaty): floaty}),
            check_records=False,
        ).record_count
        == 1
    )


def test_fixture_car_is_not_a_repo() -> None:
    fixtures = vectors.vector_json("repo", "car-file-fixtures.json", base=vectors.EXTRA)
    for fx in fixtures:
        car = base64.b64decode(fx["car"] + "=" * (-len(fx["car"]) % 4))
        with pytest.raises(RepoVerifyError, match="commit"):
            verify_repo_car(car)
    assert len(fixtures) > 0


def test_record_proof_car() -> None:
    _store, repo, _ = _populated()
    proof = read_car(repo.record_proof_car(POST, "3l2aaaaaaaa22"))
    assert proof.roots == [repo.commit_cid]
    tree = MST.load(MemoryBlockStore(proof.blocks), repo.data)
    cid = tree.get(f"{POST}/3l2aaaaaaaa22")
    assert cid is not None and cid in proof.blocks
    absent = read_car(repo.record_proof_car(POST, "3l2aaaaaacc22"))  # deleted: proves absence
    assert MST.load(MemoryBlockStore(absent.blocks), repo.data).get(f"{POST}/3l2aaaaaacc22") is None


# ---- the commit's MST delta and covering proof --------------------------------------------------------


def test_covering_proof_matches_commit_proof_fixtures() -> None:
    fixtures = vectors.vector_json("firehose", "commit-proof-fixtures.json")
    ran = 0
    for fx in fixtures:
        leaf = CID.decode(fx["leafValue"])
        store = MemoryBlockStore()
        before = MST.from_items(store, [(k, leaf) for k in fx["keys"]])
        assert before.root().encode() == fx["rootBeforeCommit"], fx["comment"]
        store.update(before.new_blocks().items())
        after = before
        ops = []
        for k in fx["adds"]:
            after = after.put(k, leaf)
            ops.append(RepoOp("create", k, leaf))
        for k in fx["dels"]:
            after = after.delete(k)
            ops.append(RepoOp("delete", k, None, leaf))
        root = after.root()
        assert root.encode() == fx["rootAfterCommit"], fx["comment"]
        nodes = TrustedNodes(Overlay(store, after.new_blocks()))
        proof = covering_proof(nodes, root, fx["adds"] + fx["dels"])
        assert {CID.decode(c) for c in fx["blocksInProof"]} <= set(proof), fx["comment"]
        assert proof == proof_blocks(Overlay(store, after.new_blocks()), root, fx["adds"] + fx["dels"])
        # the proof alone is enough to invert the ops
        assert invert_ops(MemoryBlockStore(dict(proof)), root, ops).encode() == fx["rootBeforeCommit"]
        added, removed = tree_delta(nodes, before.root(), root)
        assert set(added) == set(after.new_blocks())
        assert added.keys().isdisjoint(removed)
        ran += 1
    assert ran == len(fixtures) > 0


_keys = st.lists(
    st.sampled_from(
        [f"com.example.c{a}/k{b}{c}" for a in "ab" for b in "abcdefghijklmnop" for c in "0123456789"]
    ),
    unique=True,
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(_keys, _keys, _keys)
def test_delta_and_proof_agree_with_mst(start: list[str], adds: list[str], dels: list[str]) -> None:
    store = MemoryBlockStore()
    leaf = cid_for_cbor(b"\xa0")
    other = cid_for_cbor(b"\x01")
    before = MST.from_items(store, [(k, leaf) for k in start])
    old_root = before.root()
    store.update(before.new_blocks().items())
    after = before
    for k in adds:
        after = after.put(k, other)
    for k in dels:
        if k in after:
            after = after.delete(k)
    new_root = after.root()
    new_blocks = after.new_blocks()
    view = Overlay(store, new_blocks)
    nodes = TrustedNodes(view)
    changed = sorted(set(adds) | set(dels))
    assert covering_proof(nodes, new_root, changed) == proof_blocks(view, new_root, changed)
    added, removed = tree_delta(nodes, old_root, new_root)

    def reachable(root: CID) -> set[CID]:
        out, stack = set(), [root]
        while stack:
            cid = stack.pop()
            out.add(cid)
            stack.extend(s for s in nodes(cid)[2] if s is not None)
        return out

    old_set, new_set = reachable(old_root), reachable(new_root)
    assert set(added) == new_set - old_set
    assert removed == old_set - new_set
    # Given the trees' in-memory root nodes (as Repo.apply_writes does), the same answers, in the same order.
    fresh = TrustedNodes(view)
    old_top = before.root_node or old_root
    new_top = after.root_node or new_root
    delta = tree_delta(fresh, old_top, new_top)
    assert delta == (added, removed) and list(delta[0]) == list(added)
    assert covering_proof(fresh, new_top, changed) == proof_blocks(view, new_root, changed)


def _corrupt_block(car: bytes, block: bytes) -> bytes:
    """``car`` with one byte of ``block`` changed in place (same length, so only its hash breaks)."""
    at = car.index(block) + len(block) // 2
    return car[:at] + bytes((car[at] ^ 0x01,)) + car[at + 1 :]


def test_verify_repo_car_catches_corrupt_blocks_without_decoding_records() -> None:
    store, repo, _ = _populated()
    car = repo.export_car()
    record = store.get(repo.get_record_cid(POST, "3l2aaaaaaaa22"))  # type: ignore[arg-type]
    node = store.get(repo.data)
    assert record is not None and node is not None
    for check_records in (False, True):
        for block in (record, node):
            with pytest.raises(RepoVerifyError, match="does not match its CID"):
                verify_repo_car(_corrupt_block(car, block), check_records=check_records)
    # a corrupt block nothing links to is still a bad CAR: every block is hashed
    stray = encode({"stray": True})
    parsed = read_car(car)
    with_stray = write_car(parsed.roots, [*parsed.blocks.items(), (cid_for_cbor(stray), stray)])
    assert verify_repo_car(with_stray, check_records=False).record_count == 16
    with pytest.raises(RepoVerifyError, match="does not match its CID"):
        verify_repo_car(_corrupt_block(with_stray, stray), check_records=False)


def test_verified_repo_contents() -> None:
    store, repo, _ = _populated()
    likes = [RecordWrite.create(LIKE, f"3l2aaaaaab{c}22", _rec(c, LIKE)) for c in "abc"]
    repo.apply_writes([*likes, RecordWrite.create("app.bsky.feed.postgate", "3l2aaaaaaaa22", _rec("g"))], KEY)
    car = repo.export_car()
    for check_records in (True, False):
        v = verify_repo_car(car, did=DID, public_key=KEY.public_key, check_records=check_records)
        expected = [(path, cid, store.get(cid)) for path, cid in repo.records()]
        assert list(v.iter_records()) == expected and len(expected) == 20
        assert v.record_count == 20
        # "app.bsky.feed.post/…" and "app.bsky.feed.postgate/…" are separate runs of keys
        assert v.records == {LIKE: 3, POST: 16, "app.bsky.feed.postgate": 1}
        assert v.blocks == read_car(car).blocks
        assert v.commit_cid == repo.commit_cid and v.data_cid == repo.data and v.rev == repo.rev


def test_verify_repo_car_repo_path_rule_is_split_repo_path() -> None:
    """The bulk repo-path check accepts exactly the MST keys split_repo_path accepts."""
    good = _rec("ok")
    good_cid = cid_for_cbor(good)
    candidates = [
        f"{POST}/a",
        f"{POST}/.",
        f"{POST}/..",
        f"{POST}/...",
        f"{POST}/.a",
        f"{POST}/" + "a" * 512,
        f"{POST}/" + "a" * 513,
        f"{POST}/a:b~c_d-e.f",
        "app.bsky/x",
        "app.bsky.feed.p-st/x",
        "app.bsky.feed.9post/x",
        "app.9bsky.feed/x",
        "a.b.c/x",
        "A0/374913",
        "com.example." + "x" * 64 + "/x",
    ]
    ran = 0
    kinds = set()
    for path in candidates:
        try:
            split_repo_path(path)
            valid = True
        except InvalidSyntax:
            valid = False
        kinds.add(valid)
        for neighbours in ([], [f"{LIKE}/a", f"{POST}/b", "zzz.example.thing/self"]):
            items = [(p, good_cid) for p in {path, *neighbours}]
            car = _signed_car(items, {good_cid: good})
            if valid:
                assert verify_repo_car(car).record_count == len(items), path
            else:
                with pytest.raises(RepoVerifyError, match="repo path"):
                    verify_repo_car(car)
            ran += 1
    assert ran == 2 * len(candidates) and kinds == {True, False}


def test_verify_repo_car_record_with_raw_cid() -> None:
    blob = b"\x00not drisl\xff"
    raw_cid = cid_for_raw(blob)
    good = _rec("ok")
    items = [(f"{POST}/a", raw_cid), (f"{POST}/b", cid_for_cbor(good))]
    car = _signed_car(items, {raw_cid: blob, cid_for_cbor(good): good})
    v = verify_repo_car(car)  # raw-codec leaves are present but not DRISL: not decoded
    assert [(p, c) for p, c, _b in v.iter_records()] == items
    with pytest.raises(RepoVerifyError, match="missing"):
        verify_repo_car(_signed_car(items, {cid_for_cbor(good): good}))
    # a leaf CID of another codec (kept as the author made it) sends the CAR through the exact reader
    pb = b"\x0a\x02hi"
    pb_cid = CID(b"\x01\x70\x12\x20" + hashlib.sha256(pb).digest())
    items.append((f"{POST}/c", pb_cid))
    car = _signed_car(items, {raw_cid: blob, cid_for_cbor(good): good, pb_cid: pb})
    assert [b for _p, _c, b in verify_repo_car(car).iter_records()] == [blob, good, pb]
    with pytest.raises(RepoVerifyError, match="does not match"):
        verify_repo_car(_signed_car(items, {raw_cid: blob, cid_for_cbor(good): good, pb_cid: pb + b"!"}))
