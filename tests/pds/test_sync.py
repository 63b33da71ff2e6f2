"""com.atproto.sync: repo CARs (full and since), record proofs, blocks, heads, status, listings, and what an
inactive account's repo answers."""

from __future__ import annotations

import base64

from pds_support import ADMIN_PASSWORD, Pds, post_record

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import read_car
from atstack.core.cid import parse_cid
from atstack.core.commit import decode_commit, verify_commit
from atstack.core.mst import MST
from atstack.core.repo_verify import verify_repo_car
from atstack.pds.store import accounts

POST = "app.bsky.feed.post"
CAR = "application/vnd.ipld.car"


async def signing_key(pds: Pds, did: str):  # type: ignore[no-untyped-def]
    account = await pds.ctx.db.read(lambda c: accounts.get_account(c, did))
    return account.signing_key.public_key


async def test_get_repo_full_and_since(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    first = [await pds.create_record(alice, post_record(f"a{i}")) for i in range(3)]
    mid = await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})
    later = [await pds.create_record(alice, post_record(f"b{i}")) for i in range(2)]
    r = await pds.get("com.atproto.sync.getRepo", {"did": alice.did})
    assert r.status == 200 and r.headers["Content-Type"] == CAR
    repo = verify_repo_car(r.raw, did=alice.did, public_key=await signing_key(pds, alice.did))
    assert repo.record_count == 5
    latest = await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})
    assert repo.commit_cid.encode() == latest.body["cid"] and repo.rev == latest.body["rev"]
    # preferred order: the commit block first
    car = read_car(r.raw)
    assert next(iter(car.blocks)) == repo.commit_cid
    # since: only blocks of the later commits, rooted at the latest commit
    diff = read_car(
        (await pds.get("com.atproto.sync.getRepo", {"did": alice.did, "since": mid.body["rev"]})).raw
    )
    assert diff.roots == [repo.commit_cid]
    later_cids = {parse_cid(x.body["cid"]) for x in later}
    first_cids = {parse_cid(x.body["cid"]) for x in first}
    assert later_cids <= set(diff.blocks) and not first_cids & set(diff.blocks)
    assert len(diff.blocks) < len(car.blocks)


async def test_get_record_proof_and_blocks(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    for i in range(20):
        await pds.create_record(alice, post_record(f"r{i}"))
    target = await pds.create_record(alice, post_record("target"))
    rkey = target.body["uri"].rsplit("/", 1)[1]
    r = await pds.get("com.atproto.sync.getRecord", {"did": alice.did, "collection": POST, "rkey": rkey})
    assert r.status == 200 and r.headers["Content-Type"] == CAR
    proof = read_car(r.raw)
    commit = decode_commit(proof.blocks[proof.roots[0]])
    assert verify_commit(commit, await signing_key(pds, alice.did))
    tree = MST.load(MemoryBlockStore(proof.blocks), commit.data)
    assert tree.get(f"{POST}/{rkey}") == parse_cid(target.body["cid"])
    r = await pds.get(
        "com.atproto.sync.getRecord", {"did": alice.did, "collection": POST, "rkey": "3aaaaaaaaaaaa"}
    )
    assert (r.status, r.error) == (400, "RecordNotFound")
    cid = target.body["cid"]
    r = await pds.get(
        "com.atproto.sync.getBlocks", [("did", alice.did), ("cids", cid), ("cids", commit.data.encode())]
    )
    assert r.status == 200
    blocks = read_car(r.raw).blocks
    assert set(blocks) == {parse_cid(cid), commit.data}
    missing = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    r = await pds.get("com.atproto.sync.getBlocks", [("did", alice.did), ("cids", missing)])
    assert (r.status, r.error) == (400, "BlockNotFound")


async def test_list_repos_and_status(pds: Pds) -> None:
    made = [await pds.create_account(f"user{i}") for i in range(5)]
    await pds.create_record(made[0], post_record())
    await pds.create_record(made[3], post_record())
    dids: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await pds.get("com.atproto.sync.listRepos", params)
        assert r.status == 200, r.body
        pages += 1
        for repo in r.body["repos"]:
            assert repo["active"] is True and repo["rev"] and repo["head"].startswith("bafyrei")
            dids.append(repo["did"])
        cursor = r.body.get("cursor")
        if not cursor:
            break
    assert sorted(dids) == sorted(a.did for a in made) and dids == sorted(dids) and pages >= 3
    r = await pds.get("com.atproto.sync.listRepos", {"limit": "1001"})
    assert r.status == 400
    r = await pds.get("com.atproto.sync.listReposByCollection", {"collection": POST})
    assert sorted(x["did"] for x in r.body["repos"]) == sorted([made[0].did, made[3].did])
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": made[1].did})
    assert r.body["did"] == made[1].did and r.body["active"] is True and r.body["rev"]
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert (r.status, r.error) == (400, "RepoNotFound")


async def test_inactive_repo_errors(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    rec = await pds.create_record(alice, post_record())
    rkey = rec.body["uri"].rsplit("/", 1)[1]
    await pds.post("com.atproto.server.deactivateAccount", {}, alice.auth)
    calls = [
        ("com.atproto.sync.getRepo", {"did": alice.did}),
        ("com.atproto.sync.getLatestCommit", {"did": alice.did}),
        ("com.atproto.sync.getRecord", {"did": alice.did, "collection": POST, "rkey": rkey}),
        ("com.atproto.sync.getBlocks", {"did": alice.did, "cids": rec.body["cid"]}),
        ("com.atproto.repo.describeRepo", {"repo": alice.did}),
    ]
    for nsid, params in calls:
        r = await pds.get(nsid, params)
        assert (r.status, r.error) == (400, "RepoDeactivated"), (nsid, r.body)
    r = await pds.get("com.atproto.repo.getRecord", {"repo": alice.did, "collection": POST, "rkey": rkey})
    assert r.status == 400
    # the owner and the admin still read it
    assert (await pds.get("com.atproto.sync.getRepo", {"did": alice.did}, alice.auth)).status == 200
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
    assert (await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did}, admin)).status == 200
    # taken down and unknown repos
    await pds.ctx.accounts.set_takedown(alice.did, "mod-1")
    r = await pds.get("com.atproto.sync.getRepo", {"did": alice.did})
    assert (r.status, r.error) == (400, "RepoTakendown")
    r = await pds.get("com.atproto.sync.getRepo", {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert (r.status, r.error) == (400, "RepoNotFound")
    status = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert status.body == {"did": alice.did, "active": False, "status": "takendown"}
