"""The PLC directory over HTTP: create, read, update, rotate, tombstone, recovery, and refusals."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import orjson
from plc_support import Plc, new_account

from atstack.core.crypto import generate_private_key
from atstack.core.plc_op import (
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    op_cid,
    op_to_data,
    op_to_did_doc,
    sign_op,
)

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_create_and_read_back(plc: Plc) -> None:
    acct = new_account("alice.test")
    assert await plc.post(acct.did, acct.genesis) == (200, None)

    status, doc, ctype = await plc.get(f"/{acct.did}")
    assert status == 200
    assert ctype.startswith("application/did+ld+json")
    assert doc == op_to_did_doc(acct.did, acct.genesis)
    assert doc["id"] == acct.did
    assert doc["alsoKnownAs"] == ["at://alice.test"]
    assert doc["verificationMethod"][0]["publicKeyMultibase"] == acct.signing.public_key.multikey()

    status, data, ctype = await plc.get(f"/{acct.did}/data")
    assert (status, ctype.split(";")[0]) == (200, "application/json")
    assert data == op_to_data(acct.did, acct.genesis)

    assert (await plc.get(f"/{acct.did}/log"))[:2] == (200, [acct.genesis])
    assert (await plc.get(f"/{acct.did}/log/last"))[:2] == (200, acct.genesis)

    audit = await plc.audit(acct.did)
    assert len(audit) == 1
    entry = audit[0]
    assert set(entry) == {"did", "operation", "cid", "nullified", "createdAt"}
    assert entry["did"] == acct.did
    assert entry["operation"] == acct.genesis
    assert entry["cid"] == op_cid(acct.genesis).encode()
    assert entry["nullified"] is False
    assert entry["createdAt"] == "2025-01-01T12:00:00.000Z"


async def test_unknown_did_is_404_everywhere(plc: Plc) -> None:
    did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    for suffix in ("", "/data", "/log", "/log/audit", "/log/last"):
        status, body, _ = await plc.get(f"/{did}{suffix}")
        assert status == 404, suffix
        assert body == {"message": f"DID not registered: {did}"}


async def test_update_handle_and_pds(plc: Plc) -> None:
    acct = new_account("alice.test")
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    plc.clock.advance(timedelta(seconds=5))
    update = create_update_op(
        acct.genesis, acct.rotation[1], handle="bob.test", pds_endpoint="https://other.example.com"
    )
    assert (await plc.post(acct.did, update))[0] == 200

    _, doc, _ = await plc.get(f"/{acct.did}")
    assert doc["alsoKnownAs"] == ["at://bob.test"]
    assert doc["service"] == [
        {
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://other.example.com",
        }
    ]
    assert (await plc.get(f"/{acct.did}/log"))[1] == [acct.genesis, update]
    assert (await plc.get(f"/{acct.did}/log/last"))[1] == update
    audit = await plc.audit(acct.did)
    assert [e["createdAt"] for e in audit] == ["2025-01-01T12:00:00.000Z", "2025-01-01T12:00:05.000Z"]
    assert update["prev"] == audit[0]["cid"]


async def test_rotate_keys(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    new_key = generate_private_key("p256")
    rotate = create_update_op(acct.genesis, acct.rotation[0], rotation_keys=[new_key])
    assert (await plc.post(acct.did, rotate))[0] == 200
    assert (await plc.get(f"/{acct.did}/data"))[1]["rotationKeys"] == [new_key.did_key()]

    # the old key no longer signs anything
    stale = sign_op(
        {k: v for k, v in create_update_op(rotate, new_key, handle="x.test").items() if k != "sig"},
        acct.rotation[1],
    )
    status, body = await plc.post(acct.did, stale)
    assert status == 400 and "rotation key" in body["message"]
    assert len(await plc.audit(acct.did)) == 2

    fresh = create_update_op(rotate, new_key, handle="x.test")
    assert (await plc.post(acct.did, fresh))[0] == 200
    assert (await plc.get(f"/{acct.did}"))[1]["alsoKnownAs"] == ["at://x.test"]


async def test_tombstone(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    tomb = create_tombstone_op(acct.genesis, acct.rotation[1])
    assert (await plc.post(acct.did, tomb))[0] == 200

    for suffix in ("", "/data"):
        status, body, _ = await plc.get(f"/{acct.did}{suffix}")
        assert status == 410
        assert body == {"message": f"DID not available: {acct.did}"}
    audit = await plc.audit(acct.did)
    assert [e["operation"]["type"] for e in audit] == ["plc_operation", "plc_tombstone"]
    assert (await plc.get(f"/{acct.did}/log/last"))[1] == tomb
    assert (await plc.get(f"/{acct.did}/log"))[1] == [acct.genesis, tomb]

    # nothing may follow a tombstone
    after = sign_op({"type": "plc_tombstone", "prev": op_cid(tomb).encode()}, acct.rotation[0])
    status, body = await plc.post(acct.did, after)
    assert status == 400 and "tombstone" in body["message"]
    assert len(await plc.audit(acct.did)) == 2


async def test_recovery_within_72_hours_nullifies(plc: Plc) -> None:
    acct = new_account("alice.test")
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    plc.clock.advance(timedelta(hours=1))
    # the lower-authority key (index 1) hijacks the account
    hijack = create_update_op(acct.genesis, acct.rotation[1], handle="mallory.test")
    assert (await plc.post(acct.did, hijack))[0] == 200
    plc.clock.advance(timedelta(hours=71))
    # the same-authority key cannot fork it away
    rival = create_update_op(acct.genesis, acct.rotation[1], handle="rival.test")
    status, _ = await plc.post(acct.did, rival)
    assert status == 400
    # the higher-authority key recovers, forking from the genesis
    recover = create_update_op(acct.genesis, acct.rotation[0], handle="alice2.test")
    assert (await plc.post(acct.did, recover))[0] == 200

    audit = await plc.audit(acct.did)
    assert [(e["operation"], e["nullified"]) for e in audit] == [
        (acct.genesis, False),
        (hijack, True),
        (recover, False),
    ]
    assert (await plc.get(f"/{acct.did}/log"))[1] == [acct.genesis, recover]
    assert (await plc.get(f"/{acct.did}"))[1]["alsoKnownAs"] == ["at://alice2.test"]
    # an operation building on the nullified one is refused
    on_nullified = create_update_op(hijack, acct.rotation[1], handle="again.test")
    assert (await plc.post(acct.did, on_nullified))[0] == 400


async def test_recovery_after_72_hours_is_refused(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    plc.clock.advance(timedelta(minutes=1))
    hijack = create_update_op(acct.genesis, acct.rotation[1], handle="mallory.test")
    assert (await plc.post(acct.did, hijack))[0] == 200
    plc.clock.advance(timedelta(hours=72, seconds=1))
    before = await plc.audit(acct.did)
    recover = create_update_op(acct.genesis, acct.rotation[0], handle="alice2.test")
    status, body = await plc.post(acct.did, recover)
    assert status == 400 and "72 hours" in body["message"]
    assert await plc.audit(acct.did) == before


async def test_recovery_of_a_tombstone(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    tomb = create_tombstone_op(acct.genesis, acct.rotation[1])
    assert (await plc.post(acct.did, tomb))[0] == 200
    assert (await plc.get(f"/{acct.did}"))[0] == 410
    recover = create_update_op(acct.genesis, acct.rotation[0], handle="back.test")
    assert (await plc.post(acct.did, recover))[0] == 200
    assert (await plc.get(f"/{acct.did}"))[:2] == (200, op_to_did_doc(acct.did, recover))
    assert [e["nullified"] for e in await plc.audit(acct.did)] == [False, True, False]


async def _assert_refused(plc: Plc, did: str, body: object, fragment: str) -> None:
    before = await plc.get(f"/{did}/log/audit")
    export_before = (await plc.get("/export"))[1]
    status, answer = await plc.post(did, body)
    assert status == 400, answer
    assert set(answer) == {"message"}
    assert fragment in answer["message"], answer
    assert await plc.get(f"/{did}/log/audit") == before
    assert (await plc.get("/export"))[1] == export_before


async def test_bad_operations_change_nothing(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    update = create_update_op(acct.genesis, acct.rotation[0], handle="bob.test")

    tampered = dict(update, alsoKnownAs=["at://evil.test"])
    await _assert_refused(plc, acct.did, tampered, "not signed by any allowed rotation key")

    bad_sig = dict(update, sig=update["sig"][:-4] + ("AAAA" if update["sig"][-4:] != "AAAA" else "BBBA"))
    await _assert_refused(plc, acct.did, bad_sig, "sig")

    stranger = generate_private_key()
    unsigned = {k: v for k, v in update.items() if k != "sig"}
    await _assert_refused(plc, acct.did, sign_op(unsigned, stranger), "rotation key")

    wrong_prev = sign_op(dict(unsigned, prev=op_cid({"x": 1}).encode()), acct.rotation[0])
    await _assert_refused(plc, acct.did, wrong_prev, "prev")

    other = new_account("carol.test")
    await _assert_refused(plc, acct.did, other.genesis, "needs a prev")  # a second genesis
    await _assert_refused(plc, other.did, acct.genesis, "hashes to")  # genesis posted under the wrong DID
    assert (await plc.get(f"/{other.did}"))[0] == 404

    huge = sign_op(
        {
            "type": "plc_operation",
            "rotationKeys": [k.did_key() for k in acct.rotation],
            "verificationMethods": {"atproto": acct.signing.did_key()},
            "alsoKnownAs": [f"at://{i}{'a' * 240}.test" for i in range(10)],
            "services": {
                f"svc{i}": {"type": "AtprotoPersonalDataServer", "endpoint": "https://" + "p" * 490}
                for i in range(10)
            },
            "prev": op_cid(acct.genesis).encode(),
        },
        acct.rotation[0],
    )
    await _assert_refused(plc, acct.did, huge, "limit 7500")

    await _assert_refused(plc, acct.did, b'{"type": "plc_operation", ', "Invalid JSON")
    await _assert_refused(plc, acct.did, b"[1, 2, 3]", "JSON object")
    await _assert_refused(
        plc, acct.did, {"type": "plc_whatever", "prev": None, "sig": "x"}, "unknown operation type"
    )
    legacy = {
        "type": "create",
        "signingKey": acct.signing.did_key(),
        "recoveryKey": acct.rotation[0].did_key(),
        "handle": "legacy.test",
        "service": "https://pds.example.com",
        "prev": None,
    }
    signed_legacy = sign_op(legacy, acct.rotation[0])
    await _assert_refused(plc, did_for_genesis(signed_legacy), signed_legacy, "legacy")

    # still intact and writable
    assert (await plc.post(acct.did, update))[0] == 200
    assert len(await plc.audit(acct.did)) == 2


async def test_non_genesis_for_unknown_did(plc: Plc) -> None:
    acct = new_account()
    update = create_update_op(acct.genesis, acct.rotation[0], handle="bob.test")
    status, body = await plc.post(acct.did, update)
    assert status == 400 and "genesis" in body["message"]
    assert (await plc.get(f"/{acct.did}/log/audit"))[0] == 404


async def test_body_too_large(plc: Plc) -> None:
    acct = new_account()
    status, body = await plc.post(acct.did, b'{"a": "' + b"x" * 70_000 + b'"}')
    assert status == 413 and "too large" in body["message"]


async def test_resubmission_is_idempotent(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    update = create_update_op(acct.genesis, acct.rotation[0], handle="bob.test")
    assert (await plc.post(acct.did, update))[0] == 200
    before = await plc.audit(acct.did)
    plc.clock.advance(timedelta(seconds=1))
    assert (await plc.post(acct.did, update))[0] == 200
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    assert await plc.audit(acct.did) == before


async def test_concurrent_updates_serialize(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    forks = [create_update_op(acct.genesis, acct.rotation[0], handle=f"h{i}.test") for i in range(8)]
    results = await asyncio.gather(*(plc.post(acct.did, op) for op in forks))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * 7
    log = (await plc.get(f"/{acct.did}/log"))[1]
    assert len(log) == 2 and log[1] in forks
    audit = await plc.audit(acct.did)
    assert [e["nullified"] for e in audit] == [False, False]


async def test_timestamps_increase_within_one_millisecond(plc: Plc) -> None:
    accounts = [new_account(f"u{i}.test") for i in range(5)]
    for acct in accounts:  # the clock does not move: the directory still orders them strictly
        assert (await plc.post(acct.did, acct.genesis))[0] == 200
    stamps = [(await plc.audit(a.did))[0]["createdAt"] for a in accounts]
    assert all(TIMESTAMP.fullmatch(s) for s in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_p256_genesis(plc: Plc) -> None:
    rot = generate_private_key("p256")
    genesis = create_genesis_op(rot, [rot], {"atproto": rot.did_key()}, ["at://p.test"], {})
    did = did_for_genesis(genesis)
    assert (await plc.post(did, genesis))[0] == 200
    doc = (await plc.get(f"/{did}"))[1]
    assert "https://w3id.org/security/suites/ecdsa-2019/v1" in doc["@context"]


async def test_service_endpoints(plc: Plc) -> None:
    status, text, ctype = await plc.get("/")
    assert status == 200 and ctype.startswith("text/plain") and "did:plc directory" in text
    for path in ("/xrpc/_health", "/_health"):
        status, body, _ = await plc.get(path)
        assert status == 200 and "version" in body
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    await plc.post(acct.did, b"{}")
    status, metrics, _ = await plc.get("/metrics")
    assert status == 200
    assert 'plc_operations_total{result="accepted",type="create"} 1.0' in metrics
    assert 'plc_operations_total{result="rejected",type="invalid"} 1.0' in metrics
    assert "xrpc_requests_total" in metrics


async def test_audit_entries_are_valid_json_lines_in_export(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    status, text, ctype = await plc.get("/export")
    assert status == 200 and ctype.startswith("application/jsonlines")
    lines = text.split("\n")
    assert [orjson.loads(line) for line in lines] == await plc.audit(acct.did)
