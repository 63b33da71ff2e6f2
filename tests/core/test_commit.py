from __future__ import annotations

import pytest

from atstack.core.cbor import encode
from atstack.core.cid import cid_for_cbor, cid_for_raw
from atstack.core.commit import (
    Commit,
    CommitError,
    commit_unsigned_bytes,
    decode_commit,
    sign_commit,
    unsigned_bytes_of_block,
    verify_commit,
)
from atstack.core.crypto import generate_private_key

DID = "did:plc:abcdefghijklmnopqrstuvwx"
REV = "3l2aaaaaaaa22"
DATA = cid_for_cbor(encode({"l": None, "e": []}))


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_sign_decode_verify(curve: str) -> None:
    key = generate_private_key(curve)  # type: ignore[arg-type]
    commit, block, cid = sign_commit(DID, DATA, REV, key)
    assert cid == cid_for_cbor(block)
    assert commit.encode() == block
    decoded = decode_commit(block)
    assert decoded == commit
    assert decoded.prev is None and decoded.version == 3 and len(decoded.sig) == 64
    assert verify_commit(decoded, key.public_key)
    assert not verify_commit(decoded, generate_private_key(curve).public_key)  # type: ignore[arg-type]
    assert key.public_key.verify(commit_unsigned_bytes(commit), commit.sig)
    # the unsigned bytes are the map without sig, and prev is present as null
    assert commit_unsigned_bytes(commit) == encode(
        {"did": DID, "version": 3, "data": DATA, "rev": REV, "prev": None}
    )


def test_tampered_commit_fails_verification() -> None:
    key = generate_private_key()
    commit, _, _ = sign_commit(DID, DATA, REV, key)
    other = cid_for_cbor(b"\xa0")
    for changed in (
        Commit(commit.did, 3, other, commit.rev, None, commit.sig),
        Commit("did:plc:zzzzzzzzzzzzzzzzzzzzzzzz", 3, DATA, commit.rev, None, commit.sig),
        Commit(commit.did, 3, DATA, "3l2aaaaaaaa23", None, commit.sig),
        Commit(commit.did, 3, DATA, commit.rev, other, commit.sig),
        Commit(commit.did, 3, DATA, commit.rev, None, commit.sig[:63]),
    ):
        assert not verify_commit(changed, key.public_key)


def test_prev_link_roundtrip() -> None:
    key = generate_private_key()
    prev = cid_for_cbor(b"\xa1aa\x01")
    _, block, _ = sign_commit(DID, DATA, REV, key, prev=prev)
    assert decode_commit(block).prev == prev
    assert verify_commit(decode_commit(block), key.public_key)


def _good() -> dict:
    return {"did": DID, "version": 3, "data": DATA, "rev": REV, "prev": None, "sig": b"\x01" * 64}


def test_strict_decode_rejects() -> None:
    assert decode_commit(encode(_good())).did == DID
    cases: dict[str, dict] = {}
    for k in _good():
        d = _good()
        del d[k]
        cases[f"missing {k}"] = d
    cases["extra field"] = {**_good(), "extra": 1}
    cases["version 2"] = {**_good(), "version": 2}
    cases["version str"] = {**_good(), "version": "3"}
    cases["bad did"] = {**_good(), "did": "not a did"}
    cases["did int"] = {**_good(), "did": 5}
    cases["bad rev"] = {**_good(), "rev": "3l2aaaaaaaa2"}
    cases["data raw codec"] = {**_good(), "data": cid_for_raw(b"x")}
    cases["data string"] = {**_good(), "data": DATA.encode()}
    cases["prev bytes"] = {**_good(), "prev": b"\x00" * 36}
    cases["sig str"] = {**_good(), "sig": "sig"}
    for name, obj in cases.items():
        with pytest.raises(CommitError):
            decode_commit(encode(obj))
            pytest.fail(f"accepted: {name}")
    assert len(cases) == 16
    for raw in (b"", b"\xff", encode([1, 2]), encode(_good()) + b"\x00", b"\x00" * 20_000):
        with pytest.raises(CommitError):
            decode_commit(raw)


@pytest.mark.parametrize("did_len", [20, 23, 24, 255, 256, 2000])
@pytest.mark.parametrize("with_prev", [False, True])
def test_unsigned_bytes_cut_from_block_equal_reencoding(did_len: int, with_prev: bool) -> None:
    # DIDs of every CBOR text-head width, with and without prev: the cut bytes are the re-encoded map
    did = "did:web:" + "a" * (did_len - 8)
    key = generate_private_key()
    prev = cid_for_cbor(encode({"x": 1})) if with_prev else None
    commit, block, _cid = sign_commit(did, DATA, REV, key, prev=prev)
    decoded = decode_commit(block)
    assert decoded == commit
    assert unsigned_bytes_of_block(block, decoded) == commit_unsigned_bytes(decoded)
    assert verify_commit(decoded, key.public_key, block)
    assert not verify_commit(decoded, generate_private_key().public_key, block)


def test_unsigned_bytes_of_an_unexpected_block_fall_back_to_encoding() -> None:
    key = generate_private_key()
    commit, _block, _cid = sign_commit(DID, DATA, REV, key)
    # a block that is not the commit's own (here: not a 6-entry map) is never sliced
    assert unsigned_bytes_of_block(encode({"a": 1}), commit) == commit_unsigned_bytes(commit)
