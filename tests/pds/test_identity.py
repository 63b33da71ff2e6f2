"""com.atproto.identity over HTTP with a real PLC directory: updateHandle (PLC document, #identity, handle
resolution), the PLC operation flow (recommended credentials, emailed token, sign, submit), and DID/identity
resolution."""

from __future__ import annotations

from typing import Any

from pds_extras import latest_seq, outbox, replay
from pds_support import Account, Pds

from atstack.core.crypto import generate_private_key
from atstack.core.did_doc import parse_did_doc
from atstack.core.plc_op import create_tombstone_op
from atstack.core.stream import IdentityEvent
from atstack.pds.store import accounts


async def plc_get(pds: Pds, did: str, suffix: str = "") -> Any:
    async with pds.http.get(f"{pds.plc_url}/{did}{suffix}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json(content_type=None)


async def update_handle(pds: Pds, account: Account, handle: str) -> Any:
    return await pds.post("com.atproto.identity.updateHandle", {"handle": handle}, account.auth)


async def test_update_handle(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    await pds.create_account("bob")
    log_before = len(await plc_get(pds, alice.did, "/log/audit"))
    before = await latest_seq(pds)
    r = await update_handle(pds, alice, "Alice2.test")
    assert r.status == 200, r.body
    # the PLC directory has a new operation naming the new handle
    doc = await plc_get(pds, alice.did)
    assert parse_did_doc(doc, alice.did).handle == "alice2.test"
    assert len(await plc_get(pds, alice.did, "/log/audit")) == log_before + 1
    # one #identity event
    events = [e for e in await replay(pds, before) if isinstance(e, IdentityEvent)]
    assert [(e.did, e.handle) for e in events] == [(alice.did, "alice2.test")]
    # resolution follows
    r = await pds.get("com.atproto.identity.resolveHandle", {"handle": "alice2.test"})
    assert r.body == {"did": alice.did}
    r = await pds.get("com.atproto.identity.resolveHandle", {"handle": "alice.test"})
    assert (r.status, r.error) == (400, "HandleNotFound")
    async with pds.http.get(f"{pds.url}/.well-known/atproto-did", headers={"Host": "alice2.test"}) as resp:
        assert resp.status == 200 and (await resp.text()).strip() == alice.did
    r = await pds.get("com.atproto.server.getSession", headers=alice.auth)
    assert r.body["handle"] == "alice2.test"
    r = await pds.get("com.atproto.repo.describeRepo", {"repo": alice.did})
    assert r.body["handle"] == "alice2.test" and r.body["handleIsCorrect"] is True

    # the same handle again: no new PLC operation, but the event is emitted again (a repair path)
    before = await latest_seq(pds)
    assert (await update_handle(pds, alice, "alice2.test")).status == 200
    assert len(await plc_get(pds, alice.did, "/log/audit")) == log_before + 1
    events = [e for e in await replay(pds, before) if isinstance(e, IdentityEvent)]
    assert [(e.did, e.handle) for e in events] == [(alice.did, "alice2.test")]

    # refused: taken, malformed, other domains that do not resolve to us, no auth
    before = await latest_seq(pds)
    cases = [
        ("bob.test", "HandleNotAvailable"),
        ("bad handle", "InvalidRequest"),
        ("ab.test", "InvalidHandle"),
        ("alice.example.com", "InvalidHandle"),
    ]
    for handle, error in cases:
        r = await update_handle(pds, alice, handle)
        assert (r.status, r.error) == (400, error), (handle, r.body)
    r = await pds.post("com.atproto.identity.updateHandle", {"handle": "carol.test"})
    assert r.status == 401
    assert await latest_seq(pds) == before
    assert parse_did_doc(await plc_get(pds, alice.did), alice.did).handle == "alice2.test"


async def test_plc_operation_flow(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    ctx = pds.ctx
    row = await ctx.db.read(lambda c: accounts.get_account(c, alice.did))
    assert row is not None and row.rotation_key is not None
    r = await pds.get("com.atproto.identity.getRecommendedDidCredentials", headers=alice.auth)
    assert r.status == 200
    assert r.body == {
        "alsoKnownAs": ["at://alice.test"],
        "verificationMethods": {"atproto": row.signing_key.did_key()},
        "rotationKeys": [row.rotation_key.did_key()],
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": ctx.config.public_url}},
    }
    data = await plc_get(pds, alice.did, "/data")
    assert row.rotation_key.did_key() in data["rotationKeys"]

    # a token by email first
    r = await pds.post("com.atproto.identity.signPlcOperation", {"alsoKnownAs": ["at://x.test"]}, alice.auth)
    assert r.status == 400 and "token" in r.body["message"]
    assert (
        await pds.post("com.atproto.identity.requestPlcOperationSignature", headers=alice.auth)
    ).status == 200
    (message,) = [m for m in await outbox(pds) if m.recipient == alice.email]
    token = next(w for w in message.body.split() if len(w) == 11 and w[5] == "-")
    r = await pds.post("com.atproto.identity.signPlcOperation", {"token": "AAAAA-BBBBB"}, alice.auth)
    assert (r.status, r.error) == (400, "InvalidToken")

    # sign: a second rotation key added after ours, everything else as it was
    recovery = generate_private_key("k256").did_key()
    keys = [*data["rotationKeys"], recovery]
    r = await pds.post(
        "com.atproto.identity.signPlcOperation", {"token": token, "rotationKeys": keys}, alice.auth
    )
    assert r.status == 200, r.body
    op = r.body["operation"]
    assert op["type"] == "plc_operation" and op["rotationKeys"] == keys and op["sig"]
    assert op["alsoKnownAs"] == ["at://alice.test"]
    # the token was single use
    r = await pds.post("com.atproto.identity.signPlcOperation", {"token": token}, alice.auth)
    assert (r.status, r.error) == (400, "InvalidToken")

    # submit: operations that would break the account here are refused before reaching the directory
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {
                **op,
                "services": {
                    "atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://x.example"}
                },
            },
            "endpoint",
        ),
        ({**op, "rotationKeys": [recovery]}, "rotation key"),
        ({**op, "verificationMethods": {"atproto": recovery}}, "signing key"),
        ({**op, "alsoKnownAs": ["at://someone.else"]}, "alsoKnownAs"),
        ({"type": "plc_operation"}, "Invalid operation"),
    ]
    for bad_op, words in bad:
        r = await pds.post("com.atproto.identity.submitPlcOperation", {"operation": bad_op}, alice.auth)
        assert r.status == 400 and words in r.body["message"], (words, r.body)
    assert (await plc_get(pds, alice.did, "/data"))["rotationKeys"] == data["rotationKeys"]
    # a signature the directory refuses comes back as a 400 too
    forged = {**op, "sig": op["sig"][:-4] + ("AAAA" if not op["sig"].endswith("AAAA") else "BBBB")}
    r = await pds.post("com.atproto.identity.submitPlcOperation", {"operation": forged}, alice.auth)
    assert r.status == 400, r.body

    before = await latest_seq(pds)
    r = await pds.post("com.atproto.identity.submitPlcOperation", {"operation": op}, alice.auth)
    assert r.status == 200, r.body
    assert (await plc_get(pds, alice.did, "/data"))["rotationKeys"] == keys
    events = [e for e in await replay(pds, before) if isinstance(e, IdentityEvent)]
    assert [(e.did, e.handle) for e in events] == [(alice.did, "alice.test")]

    # an expired token
    await pds.post("com.atproto.identity.requestPlcOperationSignature", headers=alice.auth)
    messages = [m for m in await outbox(pds) if m.recipient == alice.email]
    token = next(w for w in messages[-1].body.split() if len(w) == 11 and w[5] == "-")
    pds.clock.advance(16 * 60)
    r = await pds.post("com.atproto.identity.signPlcOperation", {"token": token}, alice.auth)
    assert (r.status, r.error) == (400, "ExpiredToken")


async def test_resolve_did_and_identity(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.get("com.atproto.identity.resolveDid", {"did": alice.did})
    assert r.status == 200 and r.body["didDoc"]["id"] == alice.did
    expected = {"did": alice.did, "handle": "alice.test"}
    for identifier in (alice.did, "alice.test", "ALICE.test"):
        r = await pds.get("com.atproto.identity.resolveIdentity", {"identifier": identifier})
        assert r.status == 200, r.body
        assert {"did": r.body["did"], "handle": r.body["handle"]} == expected
        assert r.body["didDoc"]["id"] == alice.did
    r = await pds.get("com.atproto.identity.resolveIdentity", {"identifier": "nobody.test"})
    assert (r.status, r.error) == (400, "HandleNotFound")
    unknown = "did:plc:" + "a" * 24
    r = await pds.get("com.atproto.identity.resolveDid", {"did": unknown})
    assert (r.status, r.error) == (400, "DidNotFound")
    r = await pds.get("com.atproto.identity.resolveIdentity", {"identifier": unknown})
    assert (r.status, r.error) == (400, "DidNotFound")
    # refreshing needs a session, and sees changes at once
    r = await pds.post("com.atproto.identity.refreshIdentity", {"identifier": alice.did})
    assert r.status == 401
    assert (
        await pds.post("com.atproto.identity.updateHandle", {"handle": "alice3.test"}, alice.auth)
    ).status == 200
    r = await pds.post("com.atproto.identity.refreshIdentity", {"identifier": alice.did}, alice.auth)
    assert r.status == 200 and r.body["handle"] == "alice3.test"
    # a tombstoned DID is deactivated
    bob = await pds.create_account("bob")
    row = await pds.ctx.db.read(lambda c: accounts.get_account(c, bob.did))
    assert row is not None and row.rotation_key is not None
    last = await plc_get(pds, bob.did, "/log/last")
    await pds.ctx.plc.submit_operation(bob.did, create_tombstone_op(last, row.rotation_key))
    r = await pds.post("com.atproto.identity.refreshIdentity", {"identifier": bob.did}, alice.auth)
    assert (r.status, r.error) == (400, "DidDeactivated")
    r = await pds.get("com.atproto.identity.resolveDid", {"did": bob.did})
    assert (r.status, r.error) == (400, "DidDeactivated")
    r = await pds.get("com.atproto.identity.resolveDid", {"did": "did:key:z6Mkw"})
    assert r.status == 400
