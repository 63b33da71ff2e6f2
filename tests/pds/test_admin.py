"""com.atproto.admin over HTTP: Basic auth, takedowns (with their #account events and what stops being
served), subject status, account views, invites, handle/email/password changes, search, email, deletion."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import aiohttp
from pds_extras import ADMIN, blob_json, latest_seq, png, replay, upload
from pds_support import Clock, Pds, post_record, start_pds

from atstack.core.cid import cid_for_raw
from atstack.core.did_doc import parse_did_doc
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent
from atstack.pds.store import mail

WRONG = {"Authorization": "Basic " + base64.b64encode(b"admin:not-the-password").decode()}
REPO_REF = "com.atproto.admin.defs#repoRef"


def repo_ref(did: str) -> dict[str, str]:
    return {"$type": REPO_REF, "did": did}


async def status(pds: Pds, body: dict[str, Any]) -> Any:
    return await pds.post("com.atproto.admin.updateSubjectStatus", body, ADMIN)


async def test_admin_routes_need_basic_auth(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    queries = [
        ("com.atproto.admin.getAccountInfo", {"did": alice.did}),
        ("com.atproto.admin.getAccountInfos", {"dids": alice.did}),
        ("com.atproto.admin.getSubjectStatus", {"did": alice.did}),
        ("com.atproto.admin.getInviteCodes", {}),
        ("com.atproto.admin.searchAccounts", {}),
    ]
    procedures = [
        ("com.atproto.admin.updateSubjectStatus", {"subject": repo_ref(alice.did)}),
        ("com.atproto.admin.updateAccountHandle", {"did": alice.did, "handle": "alice2.test"}),
        ("com.atproto.admin.updateAccountEmail", {"account": alice.did, "email": "x@example.com"}),
        ("com.atproto.admin.updateAccountPassword", {"did": alice.did, "password": "pw"}),
        ("com.atproto.admin.deleteAccount", {"did": alice.did}),
        ("com.atproto.admin.disableAccountInvites", {"account": alice.did}),
        ("com.atproto.admin.enableAccountInvites", {"account": alice.did}),
        ("com.atproto.admin.disableInviteCodes", {"codes": []}),
        ("com.atproto.admin.sendEmail", {"recipientDid": alice.did, "content": "hi", "senderDid": alice.did}),
    ]
    checked = 0
    for headers in (None, WRONG, alice.auth):
        for nsid, params in queries:
            r = await pds.get(nsid, params, headers)
            assert r.status == 401 and "WWW-Authenticate" in r.headers, (nsid, headers, r.body)
            checked += 1
        for nsid, body in procedures:
            r = await pds.post(nsid, body, headers)
            assert r.status == 401, (nsid, headers, r.body)
            checked += 1
    assert checked == 3 * 14
    # nothing happened: alice is still there, unchanged
    r = await pds.get("com.atproto.admin.getAccountInfo", {"did": alice.did}, ADMIN)
    assert r.status == 200 and r.body["handle"] == "alice.test" and r.body["email"] == alice.email


async def test_takedown_and_restore(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    await pds.create_record(alice, post_record())
    blob = await upload(pds, alice, png())
    await pds.create_record(alice, {"$type": "com.example.pic", "img": blob_json(blob)})
    cid = blob["ref"]["$link"]
    before = await latest_seq(pds)

    r = await status(pds, {"subject": repo_ref(alice.did), "takedown": {"applied": True, "ref": "MOD-1"}})
    assert r.status == 200, r.body
    assert r.body == {"subject": repo_ref(alice.did), "takedown": {"applied": True, "ref": "MOD-1"}}
    events = await replay(pds, before)
    assert len(events) == 1 and isinstance(events[0], AccountEvent)
    assert (events[0].did, events[0].active, events[0].status) == (alice.did, False, "takendown")
    # nothing of the repo is served any more, to anyone but the admin
    for nsid, params in (
        ("com.atproto.sync.getRepo", {"did": alice.did}),
        ("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid}),
        ("com.atproto.sync.listBlobs", {"did": alice.did}),
    ):
        r = await pds.get(nsid, params)
        assert (r.status, r.error) == (400, "RepoTakendown"), nsid
        assert (await pds.get(nsid, params, ADMIN)).status == 200, nsid
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert r.body == {"did": alice.did, "active": False, "status": "takendown"}
    r = await pds.create_record(alice, post_record("while down"))
    assert (r.status, r.error) == (401, "AccountTakedown")
    r = await pds.post(
        "com.atproto.repo.uploadBlob", data=png(), content_type="image/png", headers=alice.auth
    )
    assert (r.status, r.error) == (401, "AccountTakedown")
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": alice.password}
    )
    assert (r.status, r.error) == (401, "AccountTakedown")
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"did": alice.did}, ADMIN)
    assert r.body == {
        "subject": repo_ref(alice.did),
        "takedown": {"applied": True, "ref": "MOD-1"},
        "deactivated": {"applied": False},
    }

    # restore
    before = await latest_seq(pds)
    r = await status(pds, {"subject": repo_ref(alice.did), "takedown": {"applied": False}})
    assert r.status == 200
    events = await replay(pds, before)
    assert [(type(e), e.active, e.status) for e in events] == [(AccountEvent, True, None)]  # type: ignore[union-attr]
    got = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid})
    assert got.status == 200 and cid_for_raw(got.raw).encode() == cid
    assert (await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).status == 200
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"did": alice.did}, ADMIN)
    assert r.body["takedown"] == {"applied": False}

    # deactivation by the admin, and a bare re-announcement of the status
    before = await latest_seq(pds)
    assert (
        await status(pds, {"subject": repo_ref(alice.did), "deactivated": {"applied": True}})
    ).status == 200
    r = await pds.get("com.atproto.sync.getRepo", {"did": alice.did})
    assert (r.status, r.error) == (400, "RepoDeactivated")
    assert (await status(pds, {"subject": repo_ref(alice.did)})).status == 200
    assert (
        await status(pds, {"subject": repo_ref(alice.did), "deactivated": {"applied": False}})
    ).status == 200
    events = await replay(pds, before)
    accounts_seen = [(e.active, e.status) for e in events if isinstance(e, AccountEvent)]
    assert accounts_seen == [(False, "deactivated"), (False, "deactivated"), (True, None)]
    assert not [e for e in events if isinstance(e, CommitEvent)]
    # a contradictory request changes nothing
    r = await status(
        pds,
        {"subject": repo_ref(alice.did), "takedown": {"applied": True}, "deactivated": {"applied": False}},
    )
    assert r.status == 400
    assert (await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).status == 200
    r = await status(
        pds, {"subject": repo_ref("did:plc:cccccccccccccccccccccccc"), "takedown": {"applied": True}}
    )
    assert (r.status, r.error) == (400, "NotFound")


async def test_blob_and_record_takedown(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    data = png()
    blob = await upload(pds, alice, data)
    made = await pds.create_record(alice, {"$type": "com.example.pic", "img": blob_json(blob)}, rkey="one")
    cid = blob["ref"]["$link"]
    subject = {"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.did, "cid": cid}
    r = await status(pds, {"subject": subject, "takedown": {"applied": True}})
    assert r.status == 200, r.body
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid})
    assert (r.status, r.error) == (400, "BlobNotFound")
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"did": alice.did, "blob": cid}, ADMIN)
    assert r.body["subject"] == subject and r.body["takedown"]["applied"] is True
    assert r.body["takedown"]["ref"]  # a time stamp when the admin gave no reference
    # neither re-uploaded nor referenced again
    r = await pds.post("com.atproto.repo.uploadBlob", data=data, content_type="image/png", headers=alice.auth)
    assert r.status == 400 and "takendown" in r.body["message"]
    r = await pds.create_record(alice, {"$type": "com.example.pic", "img": blob_json(blob)}, rkey="two")
    assert (r.status, r.error) == (400, "BlobNotFound")
    assert (await status(pds, {"subject": subject, "takedown": {"applied": False}})).status == 200
    got = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid})
    assert got.status == 200 and got.raw == data
    # a record
    uri = made.body["uri"]
    strong = {"$type": "com.atproto.repo.strongRef", "uri": uri, "cid": made.body["cid"]}
    assert (await status(pds, {"subject": strong, "takedown": {"applied": True, "ref": "R1"}})).status == 200
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"uri": uri}, ADMIN)
    assert r.body == {"subject": strong, "takedown": {"applied": True, "ref": "R1"}}
    r = await pds.get("com.atproto.admin.getSubjectStatus", {"uri": uri.replace("one", "nope")}, ADMIN)
    assert (r.status, r.error) == (400, "NotFound")
    r = await pds.get("com.atproto.admin.getSubjectStatus", {}, ADMIN)
    assert r.status == 400


async def test_account_views_and_invites(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    pds = await start_pds(tmp_path / "pds", plc_url, http, Clock(), invite_required=True)
    try:
        r = await pds.post("com.atproto.server.createInviteCode", {"useCount": 2}, ADMIN)
        code = r.body["code"]
        alice = await pds.create_account("alice", inviteCode=code)
        r = await pds.post(
            "com.atproto.server.createInviteCodes",
            {"useCount": 1, "codeCount": 3, "forAccounts": [alice.did]},
            ADMIN,
        )
        alice_codes = r.body["codes"][0]["codes"]
        bob = await pds.create_account("bob", inviteCode=alice_codes[0])

        r = await pds.get("com.atproto.admin.getAccountInfo", {"did": bob.did}, ADMIN)
        assert r.status == 200
        view = r.body
        assert (view["did"], view["handle"], view["email"]) == (bob.did, "bob.test", bob.email)
        assert view["invitedBy"]["code"] == alice_codes[0] and view["invitedBy"]["forAccount"] == alice.did
        assert view["invitedBy"]["uses"][0]["usedBy"] == bob.did
        assert view["invites"] == [] and view["invitesDisabled"] is False and "emailConfirmedAt" not in view
        r = await pds.get(
            "com.atproto.admin.getAccountInfos",
            [("dids", alice.did), ("dids", bob.did), ("dids", "did:plc:dddddddddddddddddddddddd")],
            ADMIN,
        )
        assert [v["did"] for v in r.body["infos"]] == [alice.did, bob.did]
        assert sorted(c["code"] for c in r.body["infos"][0]["invites"]) == sorted(alice_codes)
        assert r.body["infos"][0]["invitedBy"]["code"] == code
        r = await pds.get(
            "com.atproto.admin.getAccountInfo", {"did": "did:plc:dddddddddddddddddddddddd"}, ADMIN
        )
        assert (r.status, r.error) == (400, "NotFound")

        # listing: every code once, in either order, across pages
        for sort in ("recent", "usage"):
            seen: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = {"sort": sort, "limit": "2", **({"cursor": cursor} if cursor else {})}
                r = await pds.get("com.atproto.admin.getInviteCodes", params, ADMIN)
                assert r.status == 200, r.body
                seen.extend(r.body["codes"])
                cursor = r.body.get("cursor")
                if not cursor:
                    break
            assert sorted(c["code"] for c in seen) == sorted([code, *alice_codes])
            if sort == "usage":
                uses = [len(c["uses"]) for c in seen]
                assert uses == sorted(uses, reverse=True) and uses[0] == 1
        r = await pds.get("com.atproto.admin.getInviteCodes", {"sort": "oldest"}, ADMIN)
        assert r.status == 400

        # disabling codes and an account's invites
        r = await pds.post("com.atproto.admin.disableInviteCodes", {"accounts": ["admin"]}, ADMIN)
        assert r.status == 400
        r = await pds.post(
            "com.atproto.admin.disableInviteCodes", {"codes": [alice_codes[1]], "accounts": [bob.did]}, ADMIN
        )
        assert r.status == 200
        r = await pds.post(
            "com.atproto.server.createAccount",
            {
                "handle": "carol.test",
                "email": "c@example.com",
                "password": "pw-carol",
                "inviteCode": alice_codes[1],
            },
        )
        assert (r.status, r.error) == (400, "InvalidInviteCode")
        assert (
            await pds.post("com.atproto.admin.disableInviteCodes", {"accounts": [alice.did]}, ADMIN)
        ).status == 200
        r = await pds.post(
            "com.atproto.server.createAccount",
            {
                "handle": "carol.test",
                "email": "c@example.com",
                "password": "pw-carol",
                "inviteCode": alice_codes[2],
            },
        )
        assert (r.status, r.error) == (400, "InvalidInviteCode")
        assert (
            await pds.post("com.atproto.admin.disableAccountInvites", {"account": alice.did}, ADMIN)
        ).status == 200
        r = await pds.get("com.atproto.admin.getAccountInfo", {"did": alice.did}, ADMIN)
        assert r.body["invitesDisabled"] is True and all(c["disabled"] for c in r.body["invites"])
        assert (
            await pds.post("com.atproto.admin.enableAccountInvites", {"account": alice.did}, ADMIN)
        ).status == 200
        r = await pds.get("com.atproto.admin.getAccountInfo", {"did": alice.did}, ADMIN)
        assert r.body["invitesDisabled"] is False
    finally:
        await pds.runner.cleanup()


async def test_account_changes_search_email_and_deletion(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    before = await latest_seq(pds)
    # handle: the PLC document, resolution and #identity follow
    r = await pds.post(
        "com.atproto.admin.updateAccountHandle", {"did": alice.did, "handle": "Alicia.test"}, ADMIN
    )
    assert r.status == 200, r.body
    async with pds.http.get(f"{pds.plc_url}/{alice.did}") as resp:
        assert parse_did_doc(await resp.json(content_type=None), alice.did).handle == "alicia.test"
    r = await pds.get("com.atproto.identity.resolveHandle", {"handle": "alicia.test"})
    assert r.body == {"did": alice.did}
    identity = [e for e in await replay(pds, before) if isinstance(e, IdentityEvent)]
    assert [(e.did, e.handle) for e in identity] == [(alice.did, "alicia.test")]
    r = await pds.post(
        "com.atproto.admin.updateAccountHandle", {"did": alice.did, "handle": "bob.test"}, ADMIN
    )
    assert (r.status, r.error) == (400, "HandleNotAvailable")
    # email
    r = await pds.post(
        "com.atproto.admin.updateAccountEmail", {"account": "alicia.test", "email": "new@example.com"}, ADMIN
    )
    assert r.status == 200, r.body
    r = await pds.post(
        "com.atproto.admin.updateAccountEmail", {"account": alice.did, "email": bob.email}, ADMIN
    )
    assert r.status == 400
    r = await pds.get("com.atproto.admin.getAccountInfo", {"did": alice.did}, ADMIN)
    assert r.body["email"] == "new@example.com"
    # password: the old one and the old sessions stop working
    r = await pds.post(
        "com.atproto.admin.updateAccountPassword", {"did": alice.did, "password": "brand-new-pw"}, ADMIN
    )
    assert r.status == 200
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.did, "password": alice.password}
    )
    assert r.status == 401
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": "new@example.com", "password": "brand-new-pw"}
    )
    assert r.status == 200, r.body
    r = await pds.post(
        "com.atproto.server.refreshSession", headers={"Authorization": f"Bearer {alice.refresh}"}
    )
    assert r.status >= 400
    # search
    r = await pds.get("com.atproto.admin.searchAccounts", {"email": "EXAMPLE.com"}, ADMIN)
    assert sorted(a["did"] for a in r.body["accounts"]) == sorted([alice.did, bob.did])
    r = await pds.get("com.atproto.admin.searchAccounts", {"email": "new@"}, ADMIN)
    assert [a["did"] for a in r.body["accounts"]] == [alice.did]
    r = await pds.get("com.atproto.admin.searchAccounts", {"limit": "1"}, ADMIN)
    assert len(r.body["accounts"]) == 1 and r.body["cursor"]
    r2 = await pds.get("com.atproto.admin.searchAccounts", {"limit": "1", "cursor": r.body["cursor"]}, ADMIN)
    assert r2.body["accounts"][0]["did"] != r.body["accounts"][0]["did"]
    # moderation email, into the outbox
    r = await pds.post(
        "com.atproto.admin.sendEmail",
        {
            "recipientDid": bob.did,
            "content": "Please read the rules.",
            "subject": "Note",
            "senderDid": alice.did,
        },
        ADMIN,
    )
    assert r.body == {"sent": True}
    outbox = await pds.ctx.db.read(lambda c: mail.unsent_mail(c))
    assert [(m.recipient, m.subject, m.body) for m in outbox] == [
        (bob.email, "Note", "Please read the rules.")
    ]
    r = await pds.post(
        "com.atproto.admin.sendEmail",
        {"recipientDid": "did:plc:eeeeeeeeeeeeeeeeeeeeeeee", "content": "x", "senderDid": alice.did},
        ADMIN,
    )
    assert r.status == 400
    # deletion
    before = await latest_seq(pds)
    assert (await pds.post("com.atproto.admin.deleteAccount", {"did": bob.did}, ADMIN)).status == 200
    events = await replay(pds, before)
    assert [(e.did, e.active, e.status) for e in events if isinstance(e, AccountEvent)] == [
        (bob.did, False, "deleted")
    ]
    r = await pds.get("com.atproto.sync.getRepo", {"did": bob.did})
    assert (r.status, r.error) == (400, "RepoNotFound")
    r = await pds.get("com.atproto.admin.getAccountInfo", {"did": bob.did}, ADMIN)
    assert (r.status, r.error) == (400, "NotFound")
    assert (await pds.post("com.atproto.admin.deleteAccount", {"did": bob.did}, ADMIN)).status == 400
