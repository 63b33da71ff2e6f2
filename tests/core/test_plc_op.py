"""did:plc operations: DID derivation, signatures, chains and the recovery (nullification) rule."""

from __future__ import annotations

import base64
import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from atstack.core.cbor import encode as cbor_encode
from atstack.core.crypto import PrivateKey, generate_private_key, parse_did_key
from atstack.core.plc_op import (
    MAX_OP_BYTES,
    GenesisHashMismatch,
    InvalidOperation,
    LateRecovery,
    MisorderedOperation,
    OpSignatureError,
    check_op_shape,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    op_cid,
    op_to_data,
    op_to_did_doc,
    sign_op,
    validate_new_op,
    verify_audit_log,
    verify_op_chain,
    verify_op_signature,
)

# Public operations from plc.directory's audit logs: bsky.app's account, and the legacy-format genesis of
# did:plc:yk4dd2qkboz2yv6tpubpc6co (the example identifier in the did:plc spec).
BSKY_APP_DID = "did:plc:z72i7hdynmk6r22z27h6tvur"
BSKY_APP_OPS: list[dict[str, Any]] = [
    {
        "sig": "9NuYV7AqwHVTc0YuWzNV3CJafsSZWH7qCxHRUIP2xWlB-YexXC1OaYAnUayiCXLVzRQ8WBXIqF-SvZdNalwcjA",
        "prev": None,
        "type": "plc_operation",
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}},
        "alsoKnownAs": ["at://bluesky-team.bsky.social"],
        "rotationKeys": [
            "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
            "did:key:zQ3shpKnbdPx3g3CmPf5cRVTPe1HtSwVn5ish3wSnDPQCbLJK",
        ],
        "verificationMethods": {"atproto": "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"},
    },
    {
        "sig": "1mEWzRtFOgeRXH-YCSPTxb990JOXxa__n8Qw6BOKl7Ndm6OFFmwYKiiMqMCpAbxpnGjF5abfIsKc7u3a77Cbnw",
        "prev": "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm",
        "type": "plc_operation",
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}},
        "alsoKnownAs": ["at://bsky.app"],
        "rotationKeys": [
            "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
            "did:key:zQ3shpKnbdPx3g3CmPf5cRVTPe1HtSwVn5ish3wSnDPQCbLJK",
        ],
        "verificationMethods": {"atproto": "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"},
    },
]
BSKY_APP_CIDS = [
    "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm",
    "bafyreihmuvr3frdvd6vmdhucih277prdcfcezf67lasg5oekxoimnunjoq",
]
LEGACY_DID = "did:plc:yk4dd2qkboz2yv6tpubpc6co"
LEGACY_GENESIS: dict[str, Any] = {
    "sig": "7QTzqO1BcL3eDzP4P_YBxMmv5U4brHzAItkM9w5o8gZA7ElZkrVYEwsfQCfk5EoWLk58Z1y6fyNP9x1pthJnlw",
    "prev": None,
    "type": "create",
    "handle": "dan.bsky.social",
    "service": "https://bsky.social",
    "signingKey": "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ",
    "recoveryKey": "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
}
LEGACY_GENESIS_CID = "bafyreigcxay6ucqlwowfpu35alyxqtv3c4vsj7gmdtmnidsnqs6nblyarq"

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PDS = {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://pds.example.com"}}


class Actor:
    """A DID with a recovery key (index 0) and a PDS-held rotation key (index 1)."""

    def __init__(self) -> None:
        self.recovery = generate_private_key("p256")
        self.rotation = generate_private_key("k256")
        self.signing = generate_private_key("k256")
        self.genesis = create_genesis_op(
            self.rotation,
            [self.recovery, self.rotation],
            {"atproto": self.signing.did_key()},
            ["at://alice.example.com"],
            PDS,
        )
        self.did = did_for_genesis(self.genesis)


def _forge_sig(op: dict[str, Any], key: PrivateKey) -> dict[str, Any]:
    """Re-sign ``op`` (whatever its content) with ``key``."""
    return sign_op({k: v for k, v in op.items() if k != "sig"}, key)


# ---------------------------------------------------------------------------------------------------------------
# real operations


def test_real_genesis_derives_its_did_and_cid() -> None:
    assert did_for_genesis(BSKY_APP_OPS[0]) == BSKY_APP_DID
    assert [op_cid(op).encode() for op in BSKY_APP_OPS] == BSKY_APP_CIDS
    data = verify_op_chain(BSKY_APP_DID, BSKY_APP_OPS)
    assert data is not None
    assert data["alsoKnownAs"] == ["at://bsky.app"]
    assert (
        verify_op_signature(BSKY_APP_OPS[1], BSKY_APP_OPS[0]["rotationKeys"])
        in BSKY_APP_OPS[0]["rotationKeys"]
    )


def test_real_legacy_genesis() -> None:
    assert did_for_genesis(LEGACY_GENESIS) == LEGACY_DID
    assert op_cid(LEGACY_GENESIS).encode() == LEGACY_GENESIS_CID
    data = verify_op_chain(LEGACY_DID, [LEGACY_GENESIS])
    assert data == {
        "did": LEGACY_DID,
        "verificationMethods": {"atproto": LEGACY_GENESIS["signingKey"]},
        "rotationKeys": [LEGACY_GENESIS["recoveryKey"], LEGACY_GENESIS["signingKey"]],
        "alsoKnownAs": ["at://dan.bsky.social"],
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}},
    }
    # a legacy create is readable but never accepted as a new submission
    with pytest.raises(InvalidOperation):
        validate_new_op(LEGACY_DID, [], LEGACY_GENESIS, T0)


def test_real_ops_tampered() -> None:
    tampered = copy.deepcopy(BSKY_APP_OPS)
    tampered[1]["alsoKnownAs"] = ["at://evil.example.com"]
    with pytest.raises(OpSignatureError):
        verify_op_chain(BSKY_APP_DID, tampered)
    with pytest.raises(GenesisHashMismatch):
        verify_op_chain(LEGACY_DID, BSKY_APP_OPS)


# ---------------------------------------------------------------------------------------------------------------
# building and verifying chains


def test_genesis_created_here_is_accepted() -> None:
    a = Actor()
    assert re.fullmatch(r"did:plc:[a-z2-7]{24}", a.did)
    assert a.genesis["prev"] is None
    assert check_op_shape(a.genesis) == "plc_operation"
    assert verify_op_signature(a.genesis, a.genesis["rotationKeys"]) == a.rotation.did_key()
    assert verify_op_chain(a.did, [a.genesis]) == {
        "did": a.did,
        "verificationMethods": {"atproto": a.signing.did_key()},
        "rotationKeys": [a.recovery.did_key(), a.rotation.did_key()],
        "alsoKnownAs": ["at://alice.example.com"],
        "services": PDS,
    }
    assert validate_new_op(a.did, [], a.genesis, T0) == []
    with pytest.raises(GenesisHashMismatch):
        verify_op_chain(Actor().did, [a.genesis])


def test_signature_encoding_is_canonical() -> None:
    a = Actor()
    sig = a.genesis["sig"]
    assert len(sig) == 86 and "=" not in sig
    raw = base64.urlsafe_b64decode(sig + "==")
    assert parse_did_key(a.rotation.did_key()).verify(
        cbor_encode({k: v for k, v in a.genesis.items() if k != "sig"}), raw
    )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    variants = [
        sig + "==",  # padding characters
        sig + "\n",  # trailing newline
        sig[:-1] + alphabet[last ^ 1],  # non-zero padding bits decoding to the same bytes
        base64.b64encode(raw).decode().rstrip("="),  # standard alphabet (if it differs)
        sig[:-2],  # truncated
    ]
    for bad in {v for v in variants if v != sig}:
        with pytest.raises(OpSignatureError):
            verify_op_signature({**a.genesis, "sig": bad}, a.genesis["rotationKeys"])


def test_high_s_and_der_signatures_are_rejected() -> None:
    a = Actor()
    raw = base64.urlsafe_b64decode(a.genesis["sig"] + "==")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # rotation key is k256
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    high = raw[:32] + (n - s).to_bytes(32, "big")
    der = encode_dss_signature(r, s)
    for bad in (high, der):
        enc = base64.urlsafe_b64encode(bad).rstrip(b"=").decode()
        with pytest.raises(OpSignatureError):
            verify_op_signature({**a.genesis, "sig": enc}, a.genesis["rotationKeys"])


def test_update_chain_and_documents() -> None:
    a = Actor()
    new_signing = generate_private_key("p256")
    op1 = create_update_op(a.genesis, a.rotation, handle="alice2.example.com")
    op2 = create_update_op(
        op1, a.rotation, pds_endpoint="pds2.example.com", atproto_key=new_signing.public_key
    )
    op3 = create_update_op(op2, a.recovery, rotation_keys=[a.recovery])
    assert op1["prev"] == op_cid(a.genesis).encode()
    assert op1["alsoKnownAs"] == ["at://alice2.example.com"]
    assert op2["services"]["atproto_pds"]["endpoint"] == "https://pds2.example.com"
    data = verify_op_chain(a.did, [a.genesis, op1, op2, op3])
    assert data is not None
    assert data["rotationKeys"] == [a.recovery.did_key()]
    assert data["verificationMethods"] == {"atproto": new_signing.did_key()}
    doc = op_to_did_doc(a.did, op3)
    assert doc is not None
    assert doc["id"] == a.did
    assert doc["alsoKnownAs"] == ["at://alice2.example.com"]
    assert doc["verificationMethod"] == [
        {
            "id": f"{a.did}#atproto",
            "type": "Multikey",
            "controller": a.did,
            "publicKeyMultibase": new_signing.public_key.multikey(),
        }
    ]
    assert doc["service"] == [
        {
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds2.example.com",
        }
    ]
    assert "https://w3id.org/security/suites/ecdsa-2019/v1" in doc["@context"]
    # the rotation key dropped in op3 can no longer sign
    with pytest.raises(InvalidOperation):
        create_update_op(op3, a.rotation, handle="x.example.com")
    with pytest.raises(OpSignatureError):
        verify_op_chain(
            a.did, [a.genesis, op1, op2, op3, _forge_sig({**op3, "prev": op_cid(op3).encode()}, a.rotation)]
        )


def test_forged_wrong_prev_and_wrong_key_are_rejected() -> None:
    a = Actor()
    op1 = create_update_op(a.genesis, a.rotation, handle="alice2.example.com")
    # forged: content changed after signing
    with pytest.raises(OpSignatureError):
        verify_op_chain(a.did, [a.genesis, {**op1, "alsoKnownAs": ["at://mallory.example.com"]}])
    # wrong key: signed by a key that is not a rotation key of the previous op
    attacker = generate_private_key()
    hijack = _forge_sig({**op1, "rotationKeys": [attacker.did_key()]}, attacker)
    with pytest.raises(OpSignatureError):
        verify_op_chain(a.did, [a.genesis, hijack])
    with pytest.raises(OpSignatureError):
        validate_new_op(a.did, [(a.genesis, T0, False)], hijack, T0 + timedelta(minutes=1))
    # the atproto signing key is not a rotation key either
    with pytest.raises(OpSignatureError):
        verify_op_chain(a.did, [a.genesis, _forge_sig(op1, a.signing)])
    # wrong prev
    other = Actor()
    wrong_prev = _forge_sig({**op1, "prev": op_cid(other.genesis).encode()}, a.rotation)
    with pytest.raises(MisorderedOperation):
        verify_op_chain(a.did, [a.genesis, wrong_prev])
    with pytest.raises(MisorderedOperation):
        validate_new_op(a.did, [(a.genesis, T0, False)], wrong_prev, T0 + timedelta(minutes=1))
    # a second genesis for an existing DID
    with pytest.raises(MisorderedOperation):
        validate_new_op(a.did, [(a.genesis, T0, False)], a.genesis, T0 + timedelta(minutes=1))
    # a genesis signed by a key outside its own rotation keys
    with pytest.raises(InvalidOperation):
        create_genesis_op(attacker, [a.rotation], {}, [], {})
    stray = _forge_sig(a.genesis, attacker)
    with pytest.raises(OpSignatureError):
        verify_op_chain(did_for_genesis(stray), [stray])


def test_tombstone() -> None:
    a = Actor()
    op1 = create_update_op(a.genesis, a.rotation, handle="alice2.example.com")
    tomb = create_tombstone_op(op1, a.rotation)
    assert set(tomb) == {"type", "prev", "sig"}
    assert verify_op_chain(a.did, [a.genesis, op1, tomb]) is None
    assert op_to_data(a.did, tomb) is None and op_to_did_doc(a.did, tomb) is None
    after = _forge_sig({**op1, "prev": op_cid(tomb).encode()}, a.rotation)
    with pytest.raises(MisorderedOperation):
        verify_op_chain(a.did, [a.genesis, op1, tomb, after])
    history = [
        (a.genesis, T0, False),
        (op1, T0 + timedelta(hours=1), False),
        (tomb, T0 + timedelta(hours=2), False),
    ]
    with pytest.raises(MisorderedOperation):
        validate_new_op(a.did, history, after, T0 + timedelta(hours=3))
    with pytest.raises(MisorderedOperation):
        create_tombstone_op(tomb, a.rotation)
    # the recovery key may still undo the tombstone within 72 hours
    undo = create_update_op(op1, a.recovery, handle="alice3.example.com")
    assert validate_new_op(a.did, history, undo, T0 + timedelta(hours=4)) == [2]


# ---------------------------------------------------------------------------------------------------------------
# the directory's acceptance rule: recovery and nullification


def _history_with_hijack() -> tuple[Actor, list[tuple[dict[str, Any], datetime, bool]], dict[str, Any]]:
    """Genesis, then two updates signed by the lower-priority rotation key (index 1)."""
    a = Actor()
    attacker = generate_private_key()
    op1 = create_update_op(a.genesis, a.rotation, rotation_keys=[a.rotation, attacker])
    op2 = create_update_op(op1, attacker, handle="mallory.example.com")
    history = [
        (a.genesis, T0, False),
        (op1, T0 + timedelta(hours=1), False),
        (op2, T0 + timedelta(hours=2), False),
    ]
    return a, history, op1


def test_plain_update_nullifies_nothing() -> None:
    a, history, _ = _history_with_hijack()
    head = history[-1][0]
    # the attacker key is now rotation key 1 of the head
    assert (
        validate_new_op(a.did, history, create_tombstone_op(head, a.rotation), T0 + timedelta(hours=3)) == []
    )


def test_recovery_within_72h_nullifies_later_ops() -> None:
    a, history, _ = _history_with_hijack()
    recovery = create_update_op(a.genesis, a.recovery, rotation_keys=[a.recovery])
    assert validate_new_op(a.did, history, recovery, T0 + timedelta(hours=50)) == [1, 2]
    # exactly 72 hours after the first displaced operation is still in time
    assert validate_new_op(a.did, history, recovery, T0 + timedelta(hours=73)) == [1, 2]


def test_recovery_after_72h_is_refused() -> None:
    a, history, _ = _history_with_hijack()
    recovery = create_update_op(a.genesis, a.recovery, rotation_keys=[a.recovery])
    with pytest.raises(LateRecovery):
        validate_new_op(a.did, history, recovery, T0 + timedelta(hours=73, seconds=1))


def test_recovery_needs_a_higher_priority_key() -> None:
    a, history, op1 = _history_with_hijack()
    # same key (index 1) that signed the displaced op1: not allowed to fork
    same = create_update_op(a.genesis, a.rotation, handle="fork.example.com")
    with pytest.raises(OpSignatureError):
        validate_new_op(a.did, history, same, T0 + timedelta(hours=3))
    # forking from op1 (displacing op2, signed by the attacker at index 1 of op1): op1's key 0 may do it
    fix = create_update_op(op1, a.rotation, rotation_keys=[a.rotation])
    assert validate_new_op(a.did, history, fix, T0 + timedelta(hours=3)) == [2]


def test_timestamps_must_increase_and_nullified_prev_is_refused() -> None:
    a, history, _ = _history_with_hijack()
    recovery = create_update_op(a.genesis, a.recovery, rotation_keys=[a.recovery])
    with pytest.raises(MisorderedOperation):
        validate_new_op(a.did, history, recovery, T0 + timedelta(hours=2))  # not after the head
    # record the recovery: ops 1 and 2 nullified
    history = [(op, t, i in (1, 2)) for i, (op, t, _) in enumerate(history)]
    history.append((recovery, T0 + timedelta(hours=5), False))
    on_nullified = create_update_op(history[2][0], a.rotation, handle="late.example.com")
    with pytest.raises(MisorderedOperation):
        validate_new_op(a.did, history, on_nullified, T0 + timedelta(hours=6))
    # after recovery with key 0 nothing can fork from the genesis any more
    again = create_update_op(a.genesis, a.recovery, handle="again.example.com")
    with pytest.raises(OpSignatureError):
        validate_new_op(a.did, history, again, T0 + timedelta(hours=6))
    assert (
        validate_new_op(a.did, history, create_update_op(recovery, a.recovery), T0 + timedelta(hours=6)) == []
    )


def test_audit_log_replay() -> None:
    a, history, _ = _history_with_hijack()
    recovery = create_update_op(a.genesis, a.recovery, rotation_keys=[a.recovery])
    log = [(op, t, i in (1, 2)) for i, (op, t, _) in enumerate(history)]
    log.append((recovery, T0 + timedelta(hours=5), False))
    data = verify_audit_log(a.did, log)
    assert data is not None and data["rotationKeys"] == [a.recovery.did_key()]
    wrong_flags = [(op, t, False) for op, t, _ in log]
    with pytest.raises(InvalidOperation):
        verify_audit_log(a.did, wrong_flags)
    late = [*log[:3], (recovery, T0 + timedelta(hours=80), False)]
    with pytest.raises(LateRecovery):
        verify_audit_log(a.did, [(op, t, i in (1, 2)) for i, (op, t, _) in enumerate(late)])


# ---------------------------------------------------------------------------------------------------------------
# shape and limits


def test_submission_limits() -> None:
    a = Actor()
    then = T0 + timedelta(minutes=1)
    history = [(a.genesis, T0, False)]
    extra = [generate_private_key() for _ in range(5)]
    too_many = _forge_sig(
        {**a.genesis, "rotationKeys": [k.did_key() for k in [a.rotation, *extra]]}, a.rotation
    )
    with pytest.raises(InvalidOperation, match="rotation keys"):
        validate_new_op(did_for_genesis(too_many), [], too_many, T0)
    for bad_keys in ([], [a.rotation.did_key()] * 2, [a.rotation.did_key(), "did:key:zNope"]):
        op = _forge_sig(
            {**a.genesis, "prev": op_cid(a.genesis).encode(), "rotationKeys": bad_keys}, a.rotation
        )
        with pytest.raises(InvalidOperation):
            validate_new_op(a.did, history, op, then)
        assert verify_op_chain(a.did, [a.genesis, op]) is not None  # replaying an accepted log has no limits
    big = _forge_sig(
        {
            **a.genesis,
            "prev": op_cid(a.genesis).encode(),
            "alsoKnownAs": [f"at://{i}.example.com" for i in range(400)],
        },
        a.rotation,
    )
    with pytest.raises(InvalidOperation, match=str(MAX_OP_BYTES)):
        validate_new_op(a.did, history, big, then)
    vms = {f"k{i}": a.signing.did_key() for i in range(11)}
    with pytest.raises(InvalidOperation):
        create_update_op(a.genesis, a.rotation, verification_methods=vms)
    with pytest.raises(InvalidOperation):
        create_update_op(a.genesis, a.rotation, verification_methods={"atproto": "zQ3sh-not-a-did-key"})
    # verification methods may use key types PLC cannot parse, as long as they are did:key + base58btc
    ed = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert create_update_op(a.genesis, a.rotation, verification_methods={"other": ed})[
        "verificationMethods"
    ] == {"other": ed}


def test_shape_checks() -> None:
    a = Actor()
    bad: list[Any] = [
        [],
        {**a.genesis, "type": "plc_unknown"},
        {**a.genesis, "extra": 1},
        {k: v for k, v in a.genesis.items() if k != "services"},
        {**a.genesis, "prev": "not-a-cid"},
        {**a.genesis, "rotationKeys": "did:key:z"},
        {**a.genesis, "services": {"atproto_pds": {"type": "X"}}},
        {**a.genesis, "services": {"atproto_pds": {"type": "X", "endpoint": "y", "z": "w"}}},
        {**a.genesis, "verificationMethods": {"atproto": 1}},
        {"type": "plc_tombstone", "prev": None, "sig": "x"},
        {**LEGACY_GENESIS, "prev": BSKY_APP_CIDS[0]},
        {**a.genesis, "sig": None},
    ]
    for op in bad:
        with pytest.raises(InvalidOperation):
            check_op_shape(op)
    with pytest.raises(InvalidOperation):
        sign_op(a.genesis, a.rotation)  # already signed
    with pytest.raises(TypeError):
        create_update_op(a.genesis, a.rotation, nickname="x")
    with pytest.raises(InvalidOperation):
        did_for_genesis(create_update_op(a.genesis, a.rotation))
