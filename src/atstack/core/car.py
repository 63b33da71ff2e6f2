"""CAR v1 (Content Addressable aRchive) reading and writing for repositories and firehose slices.

Spec: atproto.com/specs/repository ("CAR File Serialization"), ipld.io CARv1, DASL CAR. A CAR is
``varint(len) ‖ DRISL {"roots": [cid…], "version": 1}`` followed by blocks
``varint(len(cid) + len(data)) ‖ binary CID ‖ data``.

Readers accept any block order, duplicate blocks and blocks nothing links to; they reject anything that is
not well-formed (non-minimal or truncated varints, a bad header, lengths running past the end) and, with
``verify``, any block whose bytes do not hash to its CID. Size and block-count caps bound the work an
untrusted CAR can cause.

Two readers share those rules. :func:`iter_car_blocks` checks block by block as it yields. :func:`read_car`
and :func:`read_car_raw` first split the whole CAR in one tight loop that assumes the blessed 36-byte CIDs
repos use, check that assumption for all sections at once, and hash all blocks in one pass; a CAR
with any other CID goes through the block-by-block reader instead, so the answer is the same either way.
The optional C extension ``_car_c`` (built from ``_car_c.c``) does that split and hash check in one call
when every section has the common shape and every hash matches; anything else (errors included) comes back
to this Python code, which alone decides what to reject and how to word it.

The repository export order we write is the "preferred" one the spec leaves open: the commit, then the MST
walked depth-first in key order with every record right after the entry that links to it, so a streaming
reader sees records in key order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter

import cbrrr

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cbor import CBORDecodeError
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID

__all__ = [
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "MAX_CAR_SIZE",
    "CarError",
    "CarFile",
    "car_block",
    "encode_varint",
    "iter_car_blocks",
    "iter_repo_car",
    "read_car",
    "read_car_header",
    "read_car_raw",
    "repo_blocks_in_order",
    "write_car",
    "write_repo_car",
]

MAX_CAR_SIZE = 1 << 30  # a whole-repo export; callers reading network slices pass far smaller caps
MAX_BLOCKS = 5_000_000
MAX_BLOCK_SIZE = 2 * 1024 * 1024  # records are ≤1 MiB; leave room for large MST nodes and blobs-as-blocks
MAX_HEADER_SIZE = 64 * 1024

_SHA2_256 = 0x12
_FAST_PREFIXES = (b"\x01\x71\x12\x20", b"\x01\x55\x12\x20")  # blessed dag-cbor / raw: 36-byte CIDs
_sha256 = hashlib.sha256
_DAG_PFX = _FAST_PREFIXES[0]
_DIGEST = itemgetter(slice(4, None))  # the sha2-256 digest of a blessed 36-byte CID
_CID_PREFIX = itemgetter(slice(0, 4))
_BLESSED = frozenset(_FAST_PREFIXES)
# varint(58) ‖ {"roots": [tag 42 bytes(37) 0x00 ‖ <36-byte CID>], "version": 1} in canonical DRISL: the
# 14 bytes before a blessed 36-byte root CID and the 9 after it.
_ONE_ROOT_HEAD = bytes.fromhex("3aa265726f6f747381d82a582500")
_ONE_ROOT_TAIL = b"\x67version\x01"

_ReadBlocks = Callable[[bytes, int, int, int, bool], dict[bytes, bytes] | None]
_c_read_blocks: _ReadBlocks | None
try:  # the compiled fast path (atstack/core/_car_c.c); without it, the Python code below does it all
    from atstack.core._car_c import read_blocks as _c_read_blocks
except ImportError:
    _c_read_blocks = None


class CarError(ValueError):
    """The input is not an acceptable CAR v1 file (reason in the message)."""


@dataclass(slots=True)
class CarFile:
    roots: list[CID]
    blocks: dict[CID, bytes]


# --- varints -------------------------------------------------------------------------------------------


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128, as multiformats uses for lengths and CID fields."""
    if n < 0:
        raise ValueError("varint must be non-negative")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Strict read: minimal encoding, at most 9 bytes (63 bits), must not run past ``end``."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise CarError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if shift and not byte:
                raise CarError("varint not minimally encoded")
            return value, pos
        shift += 7
        if shift >= 63:
            raise CarError("varint too long")


def _cid_end(buf: bytes | memoryview, pos: int, end: int, verify: bool) -> int:
    """Offset just past the binary CIDv1 starting at ``pos``; checks the fields needed to trust it."""
    if buf[pos : pos + 4] in _FAST_PREFIXES:
        if pos + 36 > end:
            raise CarError("block shorter than its CID")
        return pos + 36
    version, p = _read_varint(buf, pos, end)
    if version != 1:
        # CIDv0 (a bare sha2-256 multihash, 0x12 0x20 …) is not valid anywhere in atproto
        raise CarError(f"unsupported CID version {version}")
    _codec, p = _read_varint(buf, p, end)
    hash_fn, p = _read_varint(buf, p, end)
    digest_len, p = _read_varint(buf, p, end)
    if verify and (hash_fn != _SHA2_256 or digest_len != 32):
        raise CarError(f"unsupported CID hash function 0x{hash_fn:x} (length {digest_len})")
    if p + digest_len > end:
        raise CarError("block shorter than its CID")
    if p + digest_len - pos > 100:
        raise CarError("CID longer than 100 bytes")
    return p + digest_len


# --- reading ---------------------------------------------------------------------------------------------


def read_car_header(data: bytes | memoryview, *, max_size: int = MAX_CAR_SIZE) -> tuple[list[CID], int]:
    """Parse and check the header; return the roots and the offset of the first block."""
    if len(data) > max_size:
        raise CarError(f"CAR of {len(data)} bytes exceeds limit of {max_size}")
    if not len(data):
        raise CarError("empty input")
    if data[:14] == _ONE_ROOT_HEAD and data[50:59] == _ONE_ROOT_TAIL and data[14:18] in _FAST_PREFIXES:
        # The canonical header of every repo export and #commit slice, byte for byte: nothing to decode.
        return [CID(bytes(data[14:50]))], 59
    header_len, pos = _read_varint(data, 0, len(data))
    if header_len == 0:
        raise CarError("empty CAR header")
    if header_len > MAX_HEADER_SIZE:
        raise CarError(f"CAR header of {header_len} bytes is too large")
    if pos + header_len > len(data):
        raise CarError("truncated CAR header")
    try:
        header = cbor_decode(bytes(data[pos : pos + header_len]))
    except CBORDecodeError as exc:
        raise CarError(f"CAR header is not valid DRISL: {exc}") from None
    if type(header) is not dict or set(header) != {"roots", "version"}:
        raise CarError("CAR header must be exactly {'roots': [...], 'version': 1}")
    if type(header["version"]) is not int or header["version"] != 1:
        raise CarError(f"unsupported CAR version {header['version']!r}")
    roots = header["roots"]
    if type(roots) is not list or not all(type(r) is CID for r in roots):
        raise CarError("CAR header roots must be a list of CIDs")
    return roots, pos + header_len


def iter_car_blocks(
    data: bytes | memoryview,
    *,
    verify: bool = True,
    max_size: int = MAX_CAR_SIZE,
    max_blocks: int = MAX_BLOCKS,
    max_block_size: int = MAX_BLOCK_SIZE,
) -> Iterator[tuple[CID, bytes]]:
    """Yield ``(cid, block)`` in file order (duplicates included) after checking the header.

    The header is checked before the first block is yielded; use :func:`read_car_header` for the roots.
    Raises :class:`CarError` at the first malformed block.
    """
    _roots, pos = read_car_header(data, max_size=max_size)
    return _iter_blocks(data, pos, verify, max_blocks, max_block_size)


def _iter_blocks(
    data: bytes | memoryview, pos: int, verify: bool, max_blocks: int, max_block_size: int
) -> Iterator[tuple[CID, bytes]]:
    if type(data) is not bytes:
        data = bytes(data)  # one copy; slicing bytes below is cheaper than slicing a memoryview
    end = len(data)
    count = 0
    sha = _sha256
    startswith = data.startswith
    dag, raw = _FAST_PREFIXES
    while pos < end:
        count += 1
        if count > max_blocks:
            raise CarError(f"CAR has more than {max_blocks} blocks")
        # Section lengths of records and MST nodes fit one or two varint bytes: decode those inline.
        b0 = data[pos]
        if b0 < 0x80:
            section_len = b0
            pos += 1
        elif pos + 1 < end and 0 < data[pos + 1] < 0x80:
            section_len = (b0 & 0x7F) | (data[pos + 1] << 7)
            pos += 2
        else:
            section_len, pos = _read_varint(data, pos, end)
        section_end = pos + section_len
        if section_end > end:
            raise CarError("block length runs past the end of the CAR")
        if (startswith(dag, pos) or startswith(raw, pos)) and section_len >= 36:
            cid_end = pos + 36
        elif section_len == 0:
            raise CarError("zero-length block section")
        else:
            cid_end = _cid_end(data, pos, section_end, verify)
        if section_end - cid_end > max_block_size:
            raise CarError(f"block of {section_end - cid_end} bytes exceeds limit of {max_block_size}")
        cid_bytes = data[pos:cid_end]
        block = data[cid_end:section_end]
        if verify and sha(block).digest() != cid_bytes[-32:]:
            raise CarError(f"block does not match its CID {CID(cid_bytes).encode()}")
        yield CID(cid_bytes), block
        pos = section_end


def read_car(
    data: bytes | memoryview,
    *,
    verify: bool = True,
    max_size: int = MAX_CAR_SIZE,
    max_blocks: int = MAX_BLOCKS,
    max_block_size: int = MAX_BLOCK_SIZE,
) -> CarFile:
    """Parse a whole CAR into roots and a CID → bytes map (the first copy of a duplicate block wins)."""
    roots, blocks = read_car_raw(
        data, verify=verify, max_size=max_size, max_blocks=max_blocks, max_block_size=max_block_size
    )
    return CarFile(roots, dict(zip(map(CID, blocks), blocks.values(), strict=True)))


def read_car_raw(
    data: bytes | memoryview,
    *,
    verify: bool = True,
    max_size: int = MAX_CAR_SIZE,
    max_blocks: int = MAX_BLOCKS,
    max_block_size: int = MAX_BLOCK_SIZE,
) -> tuple[list[CID], dict[bytes, bytes]]:
    """:func:`read_car` keyed by the binary CID instead of :class:`CID` objects.

    For readers that look many blocks up (a full repo verification): ``bytes`` keys hash and compare in C,
    while every ``CID`` dict operation runs Python-level ``__hash__``/``__eq__``.
    """
    if type(data) is not bytes:
        data = bytes(data)  # one copy; slicing bytes is cheaper than slicing a memoryview
    roots, pos = read_car_header(data, max_size=max_size)
    if _c_read_blocks is not None:
        # None unless every section is the common shape and hashes right: then the code below decides.
        by_cid = _c_read_blocks(data, pos, max_blocks, max_block_size, verify)
        if by_cid is not None:
            return roots, by_cid
    sections = _split_sections(data, pos, max_blocks, max_block_size)
    if sections is not None:
        cids, blocks = sections
        blessed = True
        if verify:
            sha = _sha256
            digests = [sha(block).digest() for block in blocks]
            # The usual repo, every block dag-cbor and intact, is settled by this one list comparison.
            if list(map(_DAG_PFX.__add__, digests)) != cids:
                blessed = _blessed(cids)
                if blessed and digests != list(map(_DIGEST, cids)):
                    bad = next(c for c, d in zip(cids, digests, strict=True) if d != c[4:])
                    raise CarError(f"block does not match its CID {CID(bad).encode()}")
        else:
            blessed = _blessed(cids)
        if blessed:
            by_cid = dict(zip(cids, blocks, strict=True))
            if len(by_cid) != len(cids) and not verify:
                # Duplicates: keep the first copy. (Verified copies of one sha2-256 CID are the same bytes.)
                by_cid = {}
                setdefault = by_cid.setdefault
                for cid, block in zip(cids, blocks, strict=True):
                    setdefault(cid, block)
            return roots, by_cid
    # Some section is not the common shape: the exact block-by-block reader decides (and hashes).
    by_cid = {}
    setdefault = by_cid.setdefault
    for cid, block in _iter_blocks(data, pos, verify, max_blocks, max_block_size):
        setdefault(cid.cid_bytes, block)
    return roots, by_cid


def _blessed(cids: list[bytes]) -> bool:
    return set(map(_CID_PREFIX, cids)) <= _BLESSED


def _split_sections(
    data: bytes, pos: int, max_blocks: int, max_block_size: int
) -> tuple[list[bytes], list[bytes]] | None:
    """The sections from ``pos`` on, split as if each held a blessed 36-byte CID: (CIDs, blocks).

    The optimistic reader of :func:`read_car_raw`: one tight loop; the caller then checks the CIDs in bulk.
    ``None`` when a section cannot be split so, or is too large (the caller then re-reads with
    :func:`_iter_blocks`, which names the problem). Section lengths are read strictly; hashes are not
    checked here.
    """
    # Sections with one or two length bytes are under 16 KiB: only longer ones can break a usual cap.
    small_cap = max_block_size < (1 << 14)
    cids: list[bytes] = []
    blocks: list[bytes] = []
    add_cid = cids.append
    add_block = blocks.append
    end = len(data)
    try:
        for _ in range(max_blocks):
            if pos >= end:
                break
            # Section lengths of records and MST nodes fit one or two varint bytes: decode those inline
            # (an IndexError on a length cut off by the end sends the CAR to the exact reader).
            n = data[pos]
            if n < 0x80:
                pos += 1
            else:
                b1 = data[pos + 1]
                if 0 < b1 < 0x80:
                    n = (n & 0x7F) | (b1 << 7)
                    pos += 2
                else:
                    n, pos = _read_varint(data, pos, end)
                    if n - 36 > max_block_size:
                        return None
            if n < 36:
                return None
            cid_end = pos + 36
            add_cid(data[pos:cid_end])
            pos += n
            add_block(data[cid_end:pos])
        else:
            if pos < end:
                raise CarError(f"CAR has more than {max_blocks} blocks")
    except IndexError:
        return None
    # A section that ran past the end left ``pos`` beyond it (its slices were cut short).
    if pos != end:
        return None
    if small_cap and blocks and max(map(len, blocks)) > max_block_size:
        return None
    return cids, blocks


# --- writing ---------------------------------------------------------------------------------------------


def car_header(roots: Iterable[CID]) -> bytes:
    header = cbor_encode({"roots": list(roots), "version": 1})
    return encode_varint(len(header)) + header


def car_block(cid: CID, block: bytes) -> bytes:
    """One block section: ``varint(len) ‖ CID ‖ data``."""
    cid_bytes = cid.cid_bytes
    return encode_varint(len(cid_bytes) + len(block)) + cid_bytes + block


def write_car(roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> bytes:
    """Serialise blocks in the given order (no de-duplication: callers pass what they mean to send)."""
    parts = [car_header(roots)]
    append = parts.append
    for cid, block in blocks:
        cid_bytes = cid.cid_bytes
        n = len(cid_bytes) + len(block)
        append((bytes((n,)) if n < 0x80 else encode_varint(n)) + cid_bytes + block)
    return b"".join(parts)


def _get(store: BlockStore, cid: CID) -> bytes:
    block = store.get(cid)
    if block is None:
        raise MissingBlock(cid)
    return block


def repo_blocks_in_order(store: BlockStore, commit_cid: CID) -> Iterator[tuple[CID, bytes]]:
    """Every block of the repo at ``commit_cid`` once, in the preferred export order.

    Commit; then each MST node before its contents: its left subtree, then per entry the record followed
    by the entry's right subtree. Raises :class:`MissingBlock` if the store lacks any reachable block.
    """
    commit_block = _get(store, commit_cid)
    yield commit_cid, commit_block
    commit = cbrrr.decode_dag_cbor(commit_block)
    data = commit.get("data") if type(commit) is dict else None
    if type(data) is not CID:
        raise CarError("commit has no MST root")
    seen: set[CID] = {commit_cid}
    # stack of (cid, is_node); pushed in reverse so pops come out in pre-order
    stack: list[tuple[CID, bool]] = [(data, True)]
    pop = stack.pop
    while stack:
        cid, is_node = pop()
        if cid in seen:
            continue
        seen.add(cid)
        block = _get(store, cid)
        yield cid, block
        if not is_node:
            continue
        node = cbrrr.decode_dag_cbor(block)
        later: list[tuple[CID, bool]] = []
        left = node.get("l")
        if left is not None:
            later.append((left, True))
        for entry in node["e"]:
            later.append((entry["v"], False))
            right = entry.get("t")
            if right is not None:
                later.append((right, True))
        later.reverse()
        stack.extend(later)


def iter_repo_car(store: BlockStore, commit_cid: CID) -> Iterator[bytes]:
    """A full repo export as a stream of byte chunks (header, then one chunk per block)."""
    yield car_header([commit_cid])
    for cid, block in repo_blocks_in_order(store, commit_cid):
        yield car_block(cid, block)


def write_repo_car(store: BlockStore, commit_cid: CID) -> bytes:
    """A full repo export (``com.atproto.sync.getRepo``) with the commit as the single root."""
    return b"".join(iter_repo_car(store, commit_cid))
