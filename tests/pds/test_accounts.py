"""Accounts and sessions: describeServer, createAccount (did:plc at a real directory), login, tokens, app
passwords, invites, status, deletion, service auth."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson
from pds_support import ADMIN_PASSWORD, PASSWORD, Pds, post_record, start_pds

from atstack.core.crypto import parse_multikey
from atstack.core.did_doc import parse_did_doc
from atstack.pds.jwt import b64url_encode, parse_jwt, verify_service_jwt_signature
from atstack.pds.store import accounts, mail

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


async def test_describe_server(pds: Pds) -> None:
    r = await pds.get("com.atproto.server.describeServer")
    assert r.status == 200
    assert r.body["did"] == "did:web:localhost"
    assert r.body["availableUserDomains"] == [".test"]
    assert r.body["inviteCodeRequired"] is False


async def test_create_account_registers_did_at_plc(pds: Pds, http: aiohttp.ClientSession) -> None:
    alice = await pds.create_account("alice")
    assert alice.did.startswith("did:plc:")
    async with http.get(f"{pds.plc_url}/{alice.did}") as resp:
        assert resp.status == 200
        doc = await resp.json(content_type=None)
    identity = parse_did_doc(doc, alice.did)
    assert identity.handle == "alice.test"
    assert identity.pds_endpoint == pds.ctx.config.public_url
    async with http.get(f"{pds.plc_url}/{alice.did}/data") as resp:
        data = await resp.json(content_type=None)
    account = await pds.ctx.db.read(lambda c: accounts.get_account(c, alice.did))
    assert account is not None and account.rotation_key is not None
    assert identity.signing_key == account.signing_key.public_key.multikey()
    assert account.rotation_key.did_key() in data["rotationKeys"]
    # the session works and describes the account
    r = await pds.get("com.atproto.server.getSession", headers=alice.auth)
    assert r.status == 200, r.body
    assert r.body["did"] == alice.did and r.body["handle"] == "alice.test" and r.body["active"] is True
    assert r.body["email"] == "alice@example.com"
    assert r.body["didDoc"]["id"] == alice.did


async def test_create_account_input_errors(pds: Pds) -> None:
    base = {"email": "x@example.com", "password": PASSWORD}
    cases = [
        ({"handle": "bad handle.test"}, "InvalidRequest"),  # lexicon input check, as the reference
        ({"handle": "alice.local"}, "InvalidHandle"),
        ({"handle": "alice.example.com"}, "UnsupportedDomain"),
        ({"handle": "ab.test"}, "InvalidHandle"),
        ({"handle": "a.b.test"}, "InvalidHandle"),
        ({"handle": "waytoolongforahandle.test"}, "InvalidHandle"),
    ]
    for extra, error in cases:
        r = await pds.post("com.atproto.server.createAccount", {**base, **extra})
        assert (r.status, r.error) == (400, error), (extra, r.body)
    r = await pds.post("com.atproto.server.createAccount", {"handle": "nomail.test", "password": PASSWORD})
    assert (r.status, r.body["message"]) == (400, "Email is required")
    await pds.create_account("taken")
    r = await pds.post("com.atproto.server.createAccount", {**base, "handle": "Taken.test"})
    assert r.status == 400 and "Handle already taken" in r.body["message"]
    r = await pds.post(
        "com.atproto.server.createAccount",
        {"handle": "other.test", "email": "taken@example.com", "password": "x"},
    )
    assert r.status == 400 and "Email already taken" in r.body["message"]
    rows = await pds.ctx.db.read(lambda c: c.execute("SELECT count(*) FROM account").fetchone()[0])
    assert rows == 1


async def test_invite_codes(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    pds = await start_pds(tmp_path / "inv", plc_url, http, invite_required=True)
    try:
        body = {"handle": "invited.test", "email": "i@example.com", "password": PASSWORD}
        r = await pds.post("com.atproto.server.createAccount", body)
        assert (r.status, r.error) == (400, "InvalidInviteCode")
        r = await pds.post("com.atproto.server.createInviteCode", {"useCount": 1})
        assert r.status == 401
        r = await pds.post("com.atproto.server.createInviteCode", {"useCount": 1}, ADMIN)
        assert r.status == 200, r.body
        code = r.body["code"]
        assert code.startswith("localhost-")
        r = await pds.post("com.atproto.server.createAccount", {**body, "inviteCode": code})
        assert r.status == 200, r.body
        r = await pds.post(
            "com.atproto.server.createAccount",
            {"handle": "second.test", "email": "s@example.com", "password": PASSWORD, "inviteCode": code},
        )
        assert (r.status, r.error) == (400, "InvalidInviteCode")
        did = (await pds.get("com.atproto.identity.resolveHandle", {"handle": "invited.test"})).body["did"]
        r = await pds.post(
            "com.atproto.server.createInviteCodes",
            {"codeCount": 2, "useCount": 3, "forAccounts": [did]},
            ADMIN,
        )
        assert r.status == 200 and len(r.body["codes"][0]["codes"]) == 2
        login = await pds.post("com.atproto.server.createSession", {"identifier": did, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.body['accessJwt']}"}
        r = await pds.get("com.atproto.server.getAccountInviteCodes", headers=auth)
        assert r.status == 200
        assert sorted(c["available"] for c in r.body["codes"]) == [3, 3]
        assert all(c["forAccount"] == did and c["uses"] == [] for c in r.body["codes"])
    finally:
        await pds.runner.cleanup()


async def test_create_session_identifiers_and_errors(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    for ident in ("alice.test", "ALICE.test", alice.did, "alice@example.com"):
        r = await pds.post("com.atproto.server.createSession", {"identifier": ident, "password": PASSWORD})
        assert r.status == 200, (ident, r.body)
        assert r.body["did"] == alice.did and r.body["handle"] == "alice.test"
        assert r.body["accessJwt"] and r.body["refreshJwt"] and r.body["active"] is True
    r = await pds.post("com.atproto.server.createSession", {"identifier": "alice.test", "password": "wrong"})
    assert r.status == 401 and r.body["message"] == "Invalid identifier or password"
    assert r.headers.get("WWW-Authenticate")
    r = await pds.post("com.atproto.server.createSession", {"identifier": "nobody.test", "password": "x"})
    assert r.status == 401


async def test_token_errors(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    get = "com.atproto.server.getSession"
    r = await pds.get(get)
    assert (r.status, r.error) == (401, "AuthMissing")
    # a refresh token is not an access token, and vice versa
    r = await pds.get(get, headers={"Authorization": f"Bearer {alice.refresh}"})
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.post("com.atproto.server.refreshSession", headers=alice.auth)
    assert (r.status, r.error) == (400, "InvalidToken")
    # forged: payload changed, or signed with another secret
    head, payload, sig = alice.access.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    forged = f"{head}.{b64url_encode(orjson.dumps(claims))}.{sig}"
    r = await pds.get(get, headers={"Authorization": f"Bearer {forged}"})
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.get(get, headers={"Authorization": "Bearer not.a.jwt"})
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.get(get, headers={"Authorization": "Token abc"})
    assert (r.status, r.error) == (400, "InvalidToken")
    # expired: move the clock past the access token's two hours
    pds.clock.advance(2 * 3600 + 5)
    r = await pds.get(get, headers=alice.auth)
    assert (r.status, r.error) == (400, "ExpiredToken")
    # the refresh token still works and yields a fresh access token
    r = await pds.post(
        "com.atproto.server.refreshSession", headers={"Authorization": f"Bearer {alice.refresh}"}
    )
    assert r.status == 200, r.body
    r = await pds.get(get, headers={"Authorization": f"Bearer {r.body['accessJwt']}"})
    assert r.status == 200


async def test_refresh_rotation_and_delete_session(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    old = {"Authorization": f"Bearer {alice.refresh}"}
    first = await pds.post("com.atproto.server.refreshSession", headers=old)
    assert first.status == 200, first.body
    assert first.body["refreshJwt"] != alice.refresh
    # a retry with the old token within the grace period gets the same successor
    again = await pds.post("com.atproto.server.refreshSession", headers=old)
    assert again.status == 200
    assert (
        parse_jwt(again.body["refreshJwt"]).payload["jti"]
        == parse_jwt(first.body["refreshJwt"]).payload["jti"]
    )
    new = {"Authorization": f"Bearer {first.body['refreshJwt']}"}
    r = await pds.post("com.atproto.server.deleteSession", headers=new)
    assert r.status == 200
    r = await pds.post("com.atproto.server.refreshSession", headers=new)
    assert (r.status, r.error) == (400, "ExpiredToken")
    # the old token's grace period ends
    pds.clock.advance(2 * 3600 + 5)
    r = await pds.post("com.atproto.server.refreshSession", headers=old)
    assert (r.status, r.error) == (400, "ExpiredToken")


async def test_app_passwords(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "bot"}, alice.auth)
    assert r.status == 200, r.body
    app_pw = r.body["password"]
    assert len(app_pw) == 19 and app_pw.count("-") == 3 and r.body["privileged"] is False
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "bot"}, alice.auth)
    assert r.status == 400
    r = await pds.get("com.atproto.server.listAppPasswords", headers=alice.auth)
    assert [p["name"] for p in r.body["passwords"]] == ["bot"]
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": "alice.test", "password": app_pw}
    )
    assert login.status == 200, login.body
    assert parse_jwt(login.body["accessJwt"]).payload["scope"] == "com.atproto.appPass"
    assert login.body["email"] == "alice@example.com"  # legacy sessions show it, app password or not
    app_auth = {"Authorization": f"Bearer {login.body['accessJwt']}"}
    # an app password may write records but not manage the account
    assert (
        await pds.create_record(replace(alice, access=login.body["accessJwt"]), post_record())
    ).status == 200
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "evil"}, app_auth)
    assert (r.status, r.error, r.body["message"]) == (400, "InvalidToken", "Bad token scope")
    r = await pds.post("com.atproto.server.deactivateAccount", {}, app_auth)
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.post("com.atproto.server.requestAccountDelete", headers=app_auth)
    assert (r.status, r.error) == (400, "InvalidToken")
    # the app-password session refreshes with its scope, until the password is revoked
    refreshed = await pds.post(
        "com.atproto.server.refreshSession", headers={"Authorization": f"Bearer {login.body['refreshJwt']}"}
    )
    assert parse_jwt(refreshed.body["accessJwt"]).payload["scope"] == "com.atproto.appPass"
    r = await pds.post("com.atproto.server.revokeAppPassword", {"name": "bot"}, alice.auth)
    assert r.status == 200
    r = await pds.post(
        "com.atproto.server.refreshSession",
        headers={"Authorization": f"Bearer {refreshed.body['refreshJwt']}"},
    )
    assert (r.status, r.error) == (400, "ExpiredToken")
    r = await pds.post("com.atproto.server.createSession", {"identifier": "alice.test", "password": app_pw})
    assert r.status == 401


async def test_check_account_status(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    await pds.create_record(alice, post_record())
    r = await pds.get("com.atproto.server.checkAccountStatus", headers=alice.auth)
    assert r.status == 200, r.body
    assert r.body["activated"] is True and r.body["validDid"] is True
    assert r.body["indexedRecords"] == 1 and r.body["repoBlocks"] >= 3
    head = await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})
    assert r.body["repoCommit"] == head.body["cid"] and r.body["repoRev"] == head.body["rev"]


async def test_deactivate_and_activate(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.post("com.atproto.server.deactivateAccount", {}, alice.auth)
    assert r.status == 200, r.body
    status = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert status.body == {"did": alice.did, "active": False, "status": "deactivated"}
    r = await pds.create_record(alice, post_record())
    assert (r.status, r.error) == (401, "AccountDeactivated")
    r = await pds.post("com.atproto.server.createSession", {"identifier": "alice.test", "password": PASSWORD})
    assert r.status == 200 and r.body["active"] is False and r.body["status"] == "deactivated"
    r = await pds.post("com.atproto.server.activateAccount", headers=alice.auth)
    assert r.status == 200, r.body
    status = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert status.body["active"] is True and "rev" in status.body
    assert (await pds.create_record(alice, post_record())).status == 200


async def test_request_and_delete_account(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    await pds.create_record(alice, post_record())
    r = await pds.post("com.atproto.server.requestAccountDelete", headers=alice.auth)
    assert r.status == 200, r.body
    outbox = await pds.ctx.db.read(lambda c: mail.unsent_mail(c))
    assert len(outbox) == 1 and outbox[0].recipient == "alice@example.com"
    token = outbox[0].body.split("token: ", 1)[1].split("\n", 1)[0]
    body = {"did": alice.did, "password": PASSWORD, "token": "WRONG-TOKEN"}
    r = await pds.post("com.atproto.server.deleteAccount", body)
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.post("com.atproto.server.deleteAccount", {**body, "password": "nope", "token": token})
    assert r.status == 401
    r = await pds.post("com.atproto.server.deleteAccount", {**body, "token": token})
    assert r.status == 200, r.body

    def leftovers(conn):  # type: ignore[no-untyped-def]
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE did = ?", (alice.did,)).fetchone()[0]
            for t in ("account", "repo_block", "record", "repo_root", "refresh_token")
        }

    assert set((await pds.ctx.db.read(leftovers)).values()) == {0}
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": alice.did})
    assert (r.status, r.error) == (400, "RepoNotFound")
    # the other account is untouched
    r = await pds.get("com.atproto.sync.getRepoStatus", {"did": bob.did})
    assert r.body["active"] is True


async def test_expired_delete_token(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    await pds.post("com.atproto.server.requestAccountDelete", headers=alice.auth)
    outbox = await pds.ctx.db.read(lambda c: mail.unsent_mail(c))
    token = outbox[0].body.split("token: ", 1)[1].split("\n", 1)[0]
    pds.clock.advance(16 * 60)
    r = await pds.post(
        "com.atproto.server.deleteAccount", {"did": alice.did, "password": PASSWORD, "token": token}
    )
    assert (r.status, r.error) == (400, "ExpiredToken")


async def test_get_service_auth(pds: Pds, http: aiohttp.ClientSession) -> None:
    alice = await pds.create_account("alice")
    aud = "did:web:api.example.com"
    r = await pds.get(
        "com.atproto.server.getServiceAuth", {"aud": aud, "lxm": "app.bsky.feed.getTimeline"}, alice.auth
    )
    assert r.status == 200, r.body
    parsed = parse_jwt(r.body["token"])
    assert parsed.header == {"typ": "JWT", "alg": "ES256K"}
    claims = parsed.payload
    assert (
        claims["iss"] == alice.did and claims["aud"] == aud and claims["lxm"] == "app.bsky.feed.getTimeline"
    )
    assert 0 < claims["exp"] - claims["iat"] <= 60 and claims["jti"]
    async with http.get(f"{pds.plc_url}/{alice.did}") as resp:
        key = parse_multikey(parse_did_doc(await resp.json(content_type=None), alice.did).signing_key or "")
    assert verify_service_jwt_signature(parsed, key)
    now = int(pds.clock())
    errors = [
        ({"aud": aud, "exp": str(now - 10)}, "BadExpiration"),
        ({"aud": aud, "exp": str(now + 7200), "lxm": "app.bsky.feed.getTimeline"}, "BadExpiration"),
        ({"aud": aud, "exp": str(now + 300)}, "BadExpiration"),
        ({"aud": aud, "lxm": "com.atproto.server.createAppPassword"}, "InvalidRequest"),
        ({"aud": "not-a-did"}, "InvalidRequest"),
    ]
    for params, error in errors:
        r = await pds.get("com.atproto.server.getServiceAuth", params, alice.auth)
        assert (r.status, r.error) == (400, error), (params, r.body)


async def test_resolve_handle_and_well_known(pds: Pds, http: aiohttp.ClientSession) -> None:
    alice = await pds.create_account("alice")
    r = await pds.get("com.atproto.identity.resolveHandle", {"handle": "Alice.test"})
    assert r.body == {"did": alice.did}
    r = await pds.get("com.atproto.identity.resolveHandle", {"handle": "nobody.test"})
    assert (r.status, r.error) == (400, "HandleNotFound")
    async with http.get(f"{pds.url}/.well-known/atproto-did", headers={"Host": "alice.test"}) as resp:
        assert resp.status == 200 and (await resp.text()) == alice.did
        assert resp.content_type == "text/plain"
    async with http.get(f"{pds.url}/.well-known/atproto-did", headers={"Host": "nobody.test"}) as resp:
        assert resp.status == 404
