"""Takedowns and what they hide: a taken-down record is not served by getRecord, listRecords or
sync.getRecord (the admin still reads its proof) until restored; lifting an account takedown puts the
account back in the state it had before (a deactivated account stays deactivated, and #account says so)."""

from __future__ import annotations

from typing import Any

from pds_extras import ADMIN, latest_seq, replay
from pds_support import Account, Pds

from atstack.core.car import read_car
from atstack.core.stream import AccountEvent

NOTE = "com.example.note"
REPO_REF = "com.atproto.admin.defs#repoRef"


async def status(pds: Pds, body: dict[str, Any]) -> Any:
    r = await pds.post("com.atproto.admin.updateSubjectStatus", body, ADMIN)
    assert r.status == 200, r.body
    return r


async def listed(pds: Pds, account: Account, **params: Any) -> tuple[list[str], str | None]:
    r = await pds.get("com.atproto.repo.listRecords", {"repo": account.did, "collection": NOTE, **params})
    assert r.status == 200, r.body
    return [rec["uri"].rsplit("/", 1)[1] for rec in r.body["records"]], r.body.get("cursor")


async def test_record_takedown_hides_the_record_until_restored(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    made = {}
    for rkey in ("a", "b", "c"):
        r = await pds.create_record(alice, {"$type": NOTE, "text": rkey}, rkey=rkey)
        assert r.status == 200, r.body
        made[rkey] = r.body
    strong = {"$type": "com.atproto.repo.strongRef", "uri": made["b"]["uri"], "cid": made["b"]["cid"]}
    get_b = {"repo": alice.did, "collection": NOTE, "rkey": "b"}
    sync_b = {"did": alice.did, "collection": NOTE, "rkey": "b"}
    assert (await pds.get("com.atproto.repo.getRecord", get_b)).status == 200
    assert await listed(pds, alice) == (["c", "b", "a"], None)

    await status(pds, {"subject": strong, "takedown": {"applied": True, "ref": "MOD-7"}})
    for params in (get_b, {**get_b, "cid": made["b"]["cid"]}, {**get_b, "repo": alice.handle}):
        r = await pds.get("com.atproto.repo.getRecord", params)
        assert (r.status, r.error) == (400, "RecordNotFound"), (params, r.body)
    # the owner is no exception on getRecord, as on the reference
    r = await pds.get("com.atproto.repo.getRecord", get_b, alice.auth)
    assert (r.status, r.error) == (400, "RecordNotFound")
    r = await pds.get("com.atproto.repo.getRecord", {**get_b, "rkey": "a"})
    assert r.status == 200 and r.body["value"]["text"] == "a"
    # left out of listRecords; pages stay full and the cursor still walks the rest
    assert await listed(pds, alice) == (["c", "a"], None)
    assert await listed(pds, alice, reverse="true") == (["a", "c"], None)
    assert await listed(pds, alice, limit=2) == (["c", "a"], "a")
    assert await listed(pds, alice, limit=1) == (["c"], "c")
    assert await listed(pds, alice, limit=1, cursor="c") == (["a"], "a")
    # the sync proof: not to anyone but the admin
    for headers in (None, alice.auth):
        r = await pds.get("com.atproto.sync.getRecord", sync_b, headers)
        assert (r.status, r.error) == (400, "RecordNotFound"), r.body
    r = await pds.get("com.atproto.sync.getRecord", sync_b, ADMIN)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/vnd.ipld.car")
    assert made["b"]["cid"] in {c.encode() for c in read_car(r.raw).blocks}
    assert (await pds.get("com.atproto.sync.getRecord", {**sync_b, "rkey": "a"})).status == 200

    await status(pds, {"subject": strong, "takedown": {"applied": False}})
    r = await pds.get("com.atproto.repo.getRecord", get_b)
    assert r.status == 200 and r.body["cid"] == made["b"]["cid"] and r.body["value"]["text"] == "b"
    assert await listed(pds, alice) == (["c", "b", "a"], None)
    assert (await pds.get("com.atproto.sync.getRecord", sync_b)).status == 200
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"uri": made["b"]["uri"]}, ADMIN)
    assert r.body["takedown"] == {"applied": False}


async def test_lifting_a_takedown_keeps_a_prior_deactivation(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    assert (await pds.post("com.atproto.server.deactivateAccount", {}, alice.auth)).status == 200
    before = await latest_seq(pds)
    for account in (alice, bob):
        subject = {"$type": REPO_REF, "did": account.did}
        await status(pds, {"subject": subject, "takedown": {"applied": True, "ref": "MOD-1"}})
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"did": alice.did}, ADMIN)
    assert (r.body["takedown"], r.body["deactivated"]) == (
        {"applied": True, "ref": "MOD-1"},
        {"applied": True},
    )
    for account in (alice, bob):
        subject = {"$type": REPO_REF, "did": account.did}
        await status(pds, {"subject": subject, "takedown": {"applied": False}})
    events = [e for e in await replay(pds, before) if isinstance(e, AccountEvent)]
    assert [(e.did, e.active, e.status) for e in events] == [
        (alice.did, False, "takendown"),
        (bob.did, False, "takendown"),
        (alice.did, False, "deactivated"),  # back to where the owner left it
        (bob.did, True, None),
    ]
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert r.body == {"did": alice.did, "active": False, "status": "deactivated"}
    r = await pds.get("com.atproto.sync.getRepo", {"did": alice.did})
    assert (r.status, r.error) == (400, "RepoDeactivated")
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"did": alice.did}, ADMIN)
    assert (r.body["takedown"], r.body["deactivated"]) == ({"applied": False}, {"applied": True})
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": bob.did})
    assert r.body["active"] is True and "status" not in r.body
    # the takedown revoked alice's sessions; she logs in again and reactivates herself
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": alice.password}
    )
    assert login.status == 200 and login.body["active"] is False and login.body["status"] == "deactivated"
    headers = {"Authorization": f"Bearer {login.body['accessJwt']}"}
    r = await pds.post(
        "com.atproto.repo.createRecord",
        {"repo": alice.did, "collection": NOTE, "record": {"$type": NOTE, "text": "x"}},
        headers,
    )
    assert (r.status, r.error) == (401, "AccountDeactivated")
    assert (await pds.post("com.atproto.server.activateAccount", headers=headers)).status == 200
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert r.body["active"] is True
