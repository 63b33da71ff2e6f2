"""Signed repository commits (repo format version 3).

Spec: atproto.com/specs/repository ("Commit Objects"). A commit is the DRISL map
``{"did", "version": 3, "data": <MST root>, "rev": <TID>, "prev": <cid|null>, "sig": <bytes>}``; the
signature covers the DRISL encoding of the same map without ``sig`` and the commit's CID is the dag-cbor CID
of the signed map. ``prev`` must be present (normally null). ``data`` and ``prev`` must be blessed dag-cbor
CIDs. Decoding is strict: exactly these fields, these types, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atstack.core.cbor import CBORDecodeError, head_len
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID, CODEC_DAG_CBOR, cid_for_cbor, is_blessed
from atstack.core.crypto import PrivateKey, PublicKey
from atstack.core.syntax import is_valid_tid
from atstack.core.syntax.identifiers import is_valid_did_cached

__all__ = [
    "COMMIT_VERSION",
    "MAX_COMMIT_SIZE",
    "Commit",
    "CommitError",
    "commit_unsigned_bytes",
    "decode_commit",
    "sign_commit",
    "unsigned_bytes_of_block",
    "verify_commit",
]

COMMIT_VERSION = 3
MAX_COMMIT_SIZE = 10_000  # a commit is ~200 bytes; #sync caps its whole CAR at 10,000
_FIELDS = frozenset(("did", "version", "data", "rev", "prev", "sig"))


class CommitError(ValueError):
    """A commit block is not a well-formed v3 commit (reason in the message)."""


@dataclass(frozen=True, slots=True)
class Commit:
    did: str
    version: int
    data: CID
    rev: str
    prev: CID | None
    sig: bytes

    def unsigned(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "version": self.version,
            "data": self.data,
            "rev": self.rev,
            "prev": self.prev,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.unsigned()
        d["sig"] = self.sig
        return d

    def encode(self) -> bytes:
        """The commit block (signed map)."""
        return cbor_encode(self.to_dict())


def commit_unsigned_bytes(commit: Commit) -> bytes:
    """The bytes the signature covers: the DRISL map without ``sig``."""
    return cbor_encode(commit.unsigned())


def sign_commit(
    did: str, data: CID, rev: str, key: PrivateKey, prev: CID | None = None
) -> tuple[Commit, bytes, CID]:
    """Build and sign a v3 commit; return it with its block and CID."""
    unsigned = {"did": did, "version": COMMIT_VERSION, "data": data, "rev": rev, "prev": prev}
    sig = key.sign(cbor_encode(unsigned))
    commit = Commit(did, COMMIT_VERSION, data, rev, prev, sig)
    unsigned["sig"] = sig
    block = cbor_encode(unsigned)
    return commit, block, cid_for_cbor(block)


def decode_commit(block: bytes) -> Commit:
    """Strictly decode a commit block; raises :class:`CommitError` with the reason."""
    if len(block) > MAX_COMMIT_SIZE:
        raise CommitError(f"commit block of {len(block)} bytes is too large")
    try:
        obj = cbor_decode(block)
    except CBORDecodeError as exc:
        raise CommitError(f"commit is not valid DRISL: {exc}") from None
    if type(obj) is not dict:
        raise CommitError("commit is not a map")
    keys = set(obj)
    if keys != _FIELDS:
        missing = sorted(_FIELDS - keys)
        extra = sorted(keys - _FIELDS)
        raise CommitError(f"commit fields wrong (missing {missing}, unexpected {extra})")
    version = obj["version"]
    if type(version) is not int or version != COMMIT_VERSION:
        raise CommitError(f"unsupported commit version {version!r}")
    did = obj["did"]
    if type(did) is not str or not is_valid_did_cached(did):
        raise CommitError("commit did is not a valid DID")
    data = obj["data"]
    if type(data) is not CID or not is_blessed(data, CODEC_DAG_CBOR):
        raise CommitError("commit data must be a dag-cbor sha2-256 CID")
    prev = obj["prev"]
    if prev is not None and (type(prev) is not CID or not is_blessed(prev, CODEC_DAG_CBOR)):
        raise CommitError("commit prev must be null or a dag-cbor sha2-256 CID")
    rev = obj["rev"]
    if type(rev) is not str or not is_valid_tid(rev):
        raise CommitError("commit rev is not a TID")
    sig = obj["sig"]
    if type(sig) is not bytes:
        raise CommitError("commit sig must be bytes")
    return Commit(did, version, data, rev, prev, sig)


def unsigned_bytes_of_block(block: bytes, commit: Commit) -> bytes:
    """:func:`commit_unsigned_bytes` cut out of the block ``commit`` was strictly decoded from.

    The block is canonical DRISL, whose map keys sort by length then bytes: ``did``, ``rev``, ``sig``,
    ``data``, ``prev``, ``version``. So the unsigned map is the block less its third entry, under a 5-entry
    map head — no re-encoding. Anything unexpected falls back to encoding.
    """
    d, r, s = len(commit.did), len(commit.rev), len(commit.sig)  # a valid DID and TID are ASCII
    start = 9 + head_len(d) + d + head_len(r) + r  # map head, "did" + value, "rev" + value
    end = start + 4 + head_len(s) + s
    if block[0] == 0xA6 and block[start : start + 4] == b"csig" and len(block) > end:
        return b"\xa5" + block[1:start] + block[end:]
    return commit_unsigned_bytes(commit)


def verify_commit(commit: Commit, public_key: PublicKey, block: bytes | None = None) -> bool:
    """True iff the commit's signature is valid for ``public_key`` (64-byte low-S, over the unsigned map).

    ``block``, when given, must be the block ``commit`` was decoded from by :func:`decode_commit`: the
    signed-over bytes are then cut from it instead of re-encoded.
    """
    unsigned = commit_unsigned_bytes(commit) if block is None else unsigned_bytes_of_block(block, commit)
    return public_key.verify(unsigned, commit.sig)
