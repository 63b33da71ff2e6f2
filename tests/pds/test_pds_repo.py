"""com.atproto.repo: writes (create, put, delete, applyWrites), swaps, validation modes, bad input, reads,
describeRepo, importRepo — and that a refused write changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from pds_support import Account, Pds, post_record, start_pds

from atstack.core.cid import cid_for_raw
from atstack.core.repo_verify import verify_repo_car
from atstack.core.syntax import is_valid_tid
from atstack.pds.store import blobs, iso_time

POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"


async def head(pds: Pds, did: str) -> dict[str, Any]:
    r = await pds.get("com.atproto.sync.getLatestCommit", {"did": did})
    assert r.status == 200, r.body
    return r.body  # type: ignore[no-any-return]


async def test_create_get_list_records(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    before = await head(pds, alice.did)
    r = await pds.create_record(alice, post_record("first"))
    assert r.status == 200, r.body
    uri, cid = r.body["uri"], r.body["cid"]
    rkey = uri.rsplit("/", 1)[1]
    assert uri == f"at://{alice.did}/{POST}/{rkey}" and is_valid_tid(rkey)
    assert r.body["validationStatus"] == "valid"
    after = await head(pds, alice.did)
    assert r.body["commit"] == after and after["rev"] > before["rev"]
    got = await pds.get(
        "com.atproto.repo.getRecord", {"repo": "alice.test", "collection": POST, "rkey": rkey}
    )
    assert got.status == 200
    assert got.body == {"uri": uri, "cid": cid, "value": post_record("first")}
    r = await pds.get(
        "com.atproto.repo.getRecord", {"repo": alice.did, "collection": POST, "rkey": rkey, "cid": cid}
    )
    assert r.status == 200
    missing = await pds.get(
        "com.atproto.repo.getRecord", {"repo": alice.did, "collection": POST, "rkey": "3aaaaaaaaaaaa"}
    )
    assert (missing.status, missing.error) == (400, "RecordNotFound")
    # listRecords: newest rkey first, pages by cursor; reverse for ascending
    for i in range(6):
        assert (await pds.create_record(alice, post_record(f"n{i}"))).status == 200
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"repo": alice.did, "collection": POST, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await pds.get("com.atproto.repo.listRecords", params)
        assert page.status == 200, page.body
        seen += [rec["uri"].rsplit("/", 1)[1] for rec in page.body["records"]]
        cursor = page.body.get("cursor")
        if not cursor:
            break
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    asc = await pds.get(
        "com.atproto.repo.listRecords", {"repo": alice.did, "collection": POST, "reverse": "true"}
    )
    assert [rec["uri"].rsplit("/", 1)[1] for rec in asc.body["records"]] == sorted(seen)
    for bad in ("0", "101"):
        r = await pds.get(
            "com.atproto.repo.listRecords", {"repo": alice.did, "collection": POST, "limit": bad}
        )
        assert r.status == 400


async def test_put_and_delete_record(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    profile = {"$type": PROFILE, "displayName": "Alice"}
    body = {"repo": alice.did, "collection": PROFILE, "rkey": "self", "record": profile}
    r = await pds.post("com.atproto.repo.putRecord", body, alice.auth)
    assert r.status == 200, r.body
    first_cid = r.body["cid"]
    assert r.body["validationStatus"] == "valid" and "commit" in r.body
    # identical content: no new commit
    before = await head(pds, alice.did)
    r = await pds.post("com.atproto.repo.putRecord", body, alice.auth)
    assert r.status == 200 and "commit" not in r.body and r.body["cid"] == first_cid
    assert await head(pds, alice.did) == before
    # an update
    body["record"] = {**profile, "displayName": "Alice A."}
    r = await pds.post("com.atproto.repo.putRecord", body, alice.auth)
    assert r.status == 200 and r.body["cid"] != first_cid
    # delete, then delete again (a no-op without commit)
    delete = {"repo": alice.did, "collection": PROFILE, "rkey": "self"}
    r = await pds.post("com.atproto.repo.deleteRecord", delete, alice.auth)
    assert r.status == 200 and "commit" in r.body
    r = await pds.post("com.atproto.repo.deleteRecord", delete, alice.auth)
    assert r.status == 200 and r.body == {}
    r = await pds.get(
        "com.atproto.repo.getRecord", {"repo": alice.did, "collection": PROFILE, "rkey": "self"}
    )
    assert r.error == "RecordNotFound"


async def test_swaps(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.create_record(alice, post_record())
    rkey, cid = r.body["uri"].rsplit("/", 1)[1], r.body["cid"]
    current = await head(pds, alice.did)
    stale = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    r = await pds.create_record(alice, post_record("x"), swapCommit=stale)
    assert (r.status, r.error) == (400, "InvalidSwap")
    assert r.body["message"] == f"Commit was at {current['cid']}"
    r = await pds.create_record(alice, post_record("y"), swapCommit=current["cid"])
    assert r.status == 200, r.body
    put = {"repo": alice.did, "collection": POST, "rkey": rkey, "record": post_record("edit")}
    r = await pds.post("com.atproto.repo.putRecord", {**put, "swapRecord": stale}, alice.auth)
    assert (r.status, r.error) == (400, "InvalidSwap")
    r = await pds.post("com.atproto.repo.putRecord", {**put, "swapRecord": None}, alice.auth)
    assert (r.status, r.error) == (400, "InvalidSwap")  # null: "must not exist yet"
    r = await pds.post("com.atproto.repo.putRecord", {**put, "swapRecord": cid}, alice.auth)
    assert r.status == 200, r.body
    new_cid = r.body["cid"]
    r = await pds.post(
        "com.atproto.repo.deleteRecord",
        {"repo": alice.did, "collection": POST, "rkey": rkey, "swapRecord": cid},
        alice.auth,
    )
    assert (r.status, r.error) == (400, "InvalidSwap")
    r = await pds.post(
        "com.atproto.repo.deleteRecord",
        {"repo": alice.did, "collection": POST, "rkey": rkey, "swapRecord": new_cid},
        alice.auth,
    )
    assert r.status == 200


async def test_validation_modes(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    custom = {"$type": "com.example.thing", "anything": [1, "two", {"three": None}]}
    r = await pds.create_record(alice, custom)
    assert r.status == 200 and r.body["validationStatus"] == "unknown"
    r = await pds.create_record(alice, custom, validate=True)
    assert (r.status, r.body["message"]) == (400, "Unknown lexicon type: com.example.thing")
    r = await pds.create_record(alice, custom, validate=False)
    assert r.status == 200 and "validationStatus" not in r.body
    invalid_post = {"$type": POST, "text": 42, "createdAt": "2025-01-01T00:00:00Z"}
    r = await pds.create_record(alice, invalid_post)
    assert (
        r.status == 400
        and r.error == "InvalidRequest"
        and "Invalid app.bsky.feed.post record" in r.body["message"]
    )
    r = await pds.create_record(alice, invalid_post, validate=False)
    assert r.status == 200 and "validationStatus" not in r.body
    # $type missing → the collection; a different $type → refused
    body = {
        "repo": alice.did,
        "collection": POST,
        "record": {"text": "t", "createdAt": "2025-01-01T00:00:00Z"},
    }
    r = await pds.post("com.atproto.repo.createRecord", body, alice.auth)
    assert r.status == 200 and r.body["validationStatus"] == "valid"
    got = await pds.get(
        "com.atproto.repo.getRecord",
        {"repo": alice.did, "collection": POST, "rkey": r.body["uri"].rsplit("/", 1)[1]},
    )
    assert got.body["value"]["$type"] == POST
    body["record"] = {"$type": PROFILE}
    r = await pds.post("com.atproto.repo.createRecord", body, alice.auth)
    assert r.status == 400 and r.body["message"] == f"Invalid $type: expected {POST}, got {PROFILE}"


async def test_record_keys(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    for rkey in ("../x", ".", "..", "a/b", "has space", "x" * 513):
        r = await pds.create_record(alice, post_record(), rkey=rkey)
        assert (r.status, r.error) == (400, "InvalidRequest"), (rkey, r.body)
    # lexicon key types: post keys are TIDs, the profile key is literally "self"
    r = await pds.create_record(alice, post_record(), rkey="not-a-tid")
    assert r.status == 400 and "Invalid record key for app.bsky.feed.post" in r.body["message"]
    r = await pds.create_record(alice, post_record(), rkey="not-a-tid", validate=False)
    assert r.status == 200
    r = await pds.create_record(alice, {"$type": PROFILE, "displayName": "A"}, rkey="other")
    assert r.status == 400 and "self" in r.body["message"]
    r = await pds.create_record(alice, {"$type": PROFILE, "displayName": "A"}, rkey="self")
    assert r.status == 200
    r = await pds.create_record(alice, {"$type": PROFILE, "displayName": "B"}, rkey="self")
    assert r.status == 400 and "already exists" in r.body["message"]
    # any-key collection (unknown lexicon): anything valid as a record key
    r = await pds.create_record(alice, {"$type": "com.example.any"}, rkey="k:~_.-1")
    assert r.status == 200


async def test_bad_data(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    # a 2 MiB JSON limit, so a record over the 1,000,000-byte DRISL cap reaches the record check
    pds = await start_pds(tmp_path / "big", plc_url, http, json_limit=3 * 1024 * 1024)
    try:
        alice = await pds.create_account("alice")
        before = await head(pds, alice.did)
        raw = (
            b'{"repo":"' + alice.did.encode() + b'","collection":"com.example.f","record":'
            b'{"$type":"com.example.f","x":1.5}}'
        )
        r = await pds.post(
            "com.atproto.repo.createRecord", data=raw, content_type="application/json", headers=alice.auth
        )
        assert (r.status, r.error) == (400, "InvalidRequest")
        big = {"$type": "com.example.big", "blob": "x" * 1_000_100}
        r = await pds.create_record(alice, big)
        assert r.status == 400 and "exceeds limit of 1000000" in r.body["message"]
        r = await pds.create_record(alice, {"$type": "com.example.b", "b": {"$bytes": "not base64!"}})
        assert r.status == 400
        r = await pds.create_record(alice, {"$type": "com.example.l", "l": {"$link": "nope"}})
        assert r.status == 400
        r = await pds.create_record(
            alice, {"$type": "com.example.blob", "img": {"cid": "bafkreie", "mimeType": "x/y"}}
        )
        assert r.status == 400
        # a blob nobody uploaded
        blob = {
            "$type": "blob",
            "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
            "mimeType": "image/png",
            "size": 4,
        }
        r = await pds.create_record(alice, {"$type": "com.example.blob", "img": blob})
        assert (r.status, r.error) == (400, "BlobNotFound")
        # nothing above changed the repo
        assert await head(pds, alice.did) == before
        records = await pds.ctx.db.read(lambda c: c.execute("SELECT count(*) FROM record").fetchone()[0])
        assert records == 0
    finally:
        await pds.runner.cleanup()


async def test_write_auth(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    r = await pds.post(
        "com.atproto.repo.createRecord", {"repo": alice.did, "collection": POST, "record": post_record()}
    )
    assert (r.status, r.error) == (401, "AuthMissing")
    r = await pds.post(
        "com.atproto.repo.createRecord",
        {"repo": alice.did, "collection": POST, "record": post_record()},
        bob.auth,
    )
    assert r.status == 401
    r = await pds.post(
        "com.atproto.repo.createRecord",
        {"repo": "alice.test", "collection": POST, "record": post_record()},
        alice.auth,
    )
    assert r.status == 200  # a handle names the repo too


async def test_apply_writes(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    first = await pds.create_record(alice, post_record("keep"))
    doomed = await pds.create_record(alice, post_record("doomed"))
    doomed_rkey = doomed.body["uri"].rsplit("/", 1)[1]
    writes = [
        {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": post_record("a")},
        {
            "$type": "com.atproto.repo.applyWrites#create",
            "collection": POST,
            "rkey": "3kzzzzzzzzzz2",
            "value": post_record("b"),
        },
        {
            "$type": "com.atproto.repo.applyWrites#update",
            "collection": POST,
            "rkey": first.body["uri"].rsplit("/", 1)[1],
            "value": post_record("edited"),
        },
        {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": doomed_rkey},
    ]
    r = await pds.post("com.atproto.repo.applyWrites", {"repo": alice.did, "writes": writes}, alice.auth)
    assert r.status == 200, r.body
    kinds = [x["$type"].rsplit("#", 1)[1] for x in r.body["results"]]
    assert kinds == ["createResult", "createResult", "updateResult", "deleteResult"]
    assert r.body["commit"] == await head(pds, alice.did)
    assert r.body["results"][1]["uri"].endswith("/3kzzzzzzzzzz2")
    listed = await pds.get("com.atproto.repo.listRecords", {"repo": alice.did, "collection": POST})
    texts = sorted(rec["value"]["text"] for rec in listed.body["records"])
    assert texts == ["a", "b", "edited"]
    # all or nothing: one bad write refuses the batch
    before = await head(pds, alice.did)
    bad = [
        writes[0],
        {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": doomed_rkey},
    ]
    r = await pds.post("com.atproto.repo.applyWrites", {"repo": alice.did, "writes": bad}, alice.auth)
    assert r.status == 400
    assert await head(pds, alice.did) == before
    too_many = [
        {"$type": "com.atproto.repo.applyWrites#create", "collection": "com.example.n", "value": {"i": i}}
        for i in range(201)
    ]
    r = await pds.post("com.atproto.repo.applyWrites", {"repo": alice.did, "writes": too_many}, alice.auth)
    assert r.status == 400
    ok = too_many[:200]
    r = await pds.post(
        "com.atproto.repo.applyWrites", {"repo": alice.did, "writes": ok, "validate": False}, alice.auth
    )
    assert r.status == 200, r.body
    assert len(r.body["results"]) == 200


async def test_describe_repo(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    await pds.create_record(alice, post_record())
    await pds.create_record(alice, {"$type": PROFILE, "displayName": "A"}, rkey="self")
    r = await pds.get("com.atproto.repo.describeRepo", {"repo": "alice.test"})
    assert r.status == 200, r.body
    assert (
        r.body["did"] == alice.did and r.body["handle"] == "alice.test" and r.body["handleIsCorrect"] is True
    )
    assert r.body["collections"] == [PROFILE, POST]
    assert r.body["didDoc"]["id"] == alice.did
    r = await pds.get("com.atproto.repo.describeRepo", {"repo": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert (r.status, r.error) == (400, "RepoNotFound")


async def test_import_repo(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    kept = [await pds.create_record(alice, post_record(f"p{i}")) for i in range(5)]
    car = (await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).raw
    exported = verify_repo_car(car, did=alice.did)
    # change the repo, then import the earlier export: the earlier records come back under a newer commit
    for rec in kept[:2]:
        rkey = rec.body["uri"].rsplit("/", 1)[1]
        await pds.post(
            "com.atproto.repo.deleteRecord", {"repo": alice.did, "collection": POST, "rkey": rkey}, alice.auth
        )
    await pds.create_record(alice, post_record("later"))
    changed = await head(pds, alice.did)
    r = await pds.post(
        "com.atproto.repo.importRepo", data=car, content_type="application/vnd.ipld.car", headers=alice.auth
    )
    assert r.status == 200, r.body
    now = await head(pds, alice.did)
    assert now["rev"] > changed["rev"] and now["cid"] != exported.commit_cid.encode()
    listed = await pds.get("com.atproto.repo.listRecords", {"repo": alice.did, "collection": POST})
    assert sorted(x["value"]["text"] for x in listed.body["records"]) == [f"p{i}" for i in range(5)]
    # the new state is a complete, valid repo with the same records
    again = verify_repo_car(
        (await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).raw, did=alice.did
    )
    assert again.data_cid == exported.data_cid and again.record_count == 5
    # garbage and another DID's repo are refused
    r = await pds.post(
        "com.atproto.repo.importRepo",
        data=b"nope",
        content_type="application/vnd.ipld.car",
        headers=alice.auth,
    )
    assert r.status == 400
    bob: Account = await pds.create_account("bob")
    r = await pds.post(
        "com.atproto.repo.importRepo", data=car, content_type="application/vnd.ipld.car", headers=bob.auth
    )
    assert r.status == 400


async def test_shared_record_blocks_survive_deletes(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    same = {"$type": "com.example.same", "v": 1}
    a = await pds.create_record(alice, same, rkey="a")
    b = await pds.create_record(alice, same, rkey="b")
    assert a.body["cid"] == b.body["cid"]  # one block, two paths
    r = await pds.post(
        "com.atproto.repo.deleteRecord",
        {"repo": alice.did, "collection": "com.example.same", "rkey": "a"},
        alice.auth,
    )
    assert r.status == 200
    got = await pds.get(
        "com.atproto.repo.getRecord", {"repo": alice.did, "collection": "com.example.same", "rkey": "b"}
    )
    assert got.status == 200 and got.body["value"] == same
    repo = verify_repo_car((await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).raw, did=alice.did)
    assert repo.record_count == 1
    # and blocks nothing references any more are gone
    r = await pds.post(
        "com.atproto.repo.deleteRecord",
        {"repo": alice.did, "collection": "com.example.same", "rkey": "b"},
        alice.auth,
    )
    blocks = await pds.ctx.db.read(
        lambda c: c.execute("SELECT count(*) FROM repo_block WHERE did = ?", (alice.did,)).fetchone()[0]
    )
    assert blocks == 2  # the commit and the empty MST root


async def test_record_blob_references(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    ctx = pds.ctx
    data = b"\x89PNG fake image bytes"
    cid = cid_for_raw(data)
    key = ctx.blobs.new_temp_key()
    ctx.blobs.write_temp(key, data)
    now = iso_time(ctx.clock())
    await ctx.db.execute_write(
        lambda c: blobs.insert_blob(c, alice.did, cid, "image/png", len(data), key, now)
    )
    ref = {"$type": "blob", "ref": {"$link": cid.encode()}, "mimeType": "image/png", "size": len(data)}
    r = await pds.create_record(alice, {"$type": "com.example.pic", "img": {**ref, "size": 3}})
    assert (r.status, r.error) == (400, "InvalidSize")
    r = await pds.create_record(alice, {"$type": "com.example.pic", "img": {**ref, "mimeType": "image/gif"}})
    assert (r.status, r.error) == (400, "InvalidMimeType")
    first = await pds.create_record(alice, {"$type": "com.example.pic", "img": ref}, rkey="one")
    assert first.status == 200, first.body
    row = await ctx.db.read(lambda c: blobs.get_blob(c, alice.did, cid))
    assert row is not None and row.temp_key is None
    assert ctx.blobs.read(alice.did, cid) == data and not ctx.blobs.temp_path(key).exists()
    second = await pds.create_record(alice, {"$type": "com.example.pic", "img": ref, "n": 2}, rkey="two")
    assert second.status == 200
    # the blob lives while any record references it
    delete = {"repo": alice.did, "collection": "com.example.pic", "rkey": "one"}
    await pds.post("com.atproto.repo.deleteRecord", delete, alice.auth)
    assert ctx.blobs.exists(alice.did, cid)
    await pds.post("com.atproto.repo.deleteRecord", {**delete, "rkey": "two"}, alice.auth)
    assert not ctx.blobs.exists(alice.did, cid)
    assert await ctx.db.read(lambda c: blobs.get_blob(c, alice.did, cid)) is None
