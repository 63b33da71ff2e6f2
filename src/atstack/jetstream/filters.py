"""Subscriber filters of the Jetstream v1 ``/subscribe`` endpoint: parsing and the match rule.

Spec: checklist §13 (Jetstream v1 README, ``internal/subscribe/filter.go`` of the reference):

* ``wantedCollections`` — repeatable; each a full NSID or ``<prefix>.*`` (a bare ``*`` is not accepted);
  at most 100 *unique* patterns (the cap applies after de-duplication);
* ``wantedDids`` — repeatable; each a DID; at most 10,000 unique;
* ``maxMessageSizeBytes`` — on the query string an empty, malformed, negative or overflowing value means
  "no cap" (0); in ``options_update`` a negative integer or one over 32 bits means 0, and a non-integer (or
  one beyond int64) is a malformed payload (the reference wraps 33–64-bit values modulo 2³²; we do not);
* identity and account events obey ``wantedDids`` but bypass ``wantedCollections``; a commit with an empty
  collection bypasses it too (the reference's rule).

The size cap compares the uncompressed JSON length, for zstd subscribers too (the reference does the same,
so a large record cannot slip under a small cap by compressing well). Invalid filters raise
:class:`InvalidFilter` whose message is the HTTP 400 body / close reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atstack.core.syntax import is_valid_did, is_valid_nsid, is_valid_nsid_glob

__all__ = [
    "KIND_ACCOUNT",
    "KIND_COMMIT",
    "KIND_IDENTITY",
    "KIND_NAMES",
    "KIND_SYNC",
    "MAX_SUBSCRIBER_MESSAGE_BYTES",
    "MAX_WANTED_COLLECTIONS",
    "MAX_WANTED_DIDS",
    "Filter",
    "InvalidFilter",
    "parse_max_message_size",
    "parse_options_update",
    "parse_query_filter",
]

MAX_WANTED_COLLECTIONS = 100
MAX_WANTED_DIDS = 10_000
MAX_SUBSCRIBER_MESSAGE_BYTES = 10_000_000  # decimal, as the v1 README says
_MAX_RAW_VALUES = 100  # × the cap: a list this long is abuse, not a sloppy duplicate list
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

KIND_COMMIT = 0
KIND_IDENTITY = 1
KIND_ACCOUNT = 2
KIND_SYNC = 3
KIND_NAMES = ("commit", "identity", "account", "sync")


class InvalidFilter(ValueError):
    """A filter a client asked for is not acceptable (the message says why)."""


@dataclass(slots=True, frozen=True)
class Filter:
    """One subscriber's preferences. ``None`` sets mean "everything"; filters are immutable and hashable,
    so subscribers with equal filters share one fan-out group."""

    dids: frozenset[str] | None = None
    collections: frozenset[str] | None = None  # full NSIDs
    prefixes: tuple[str, ...] = ()  # each ends with "." (``app.bsky.`` for ``app.bsky.*``)
    max_message_size: int = 0  # 0 = no cap

    @property
    def wants_all_collections(self) -> bool:
        return self.collections is None and not self.prefixes

    def collection_matches(self, collection: str) -> bool:
        if self.collections is None and not self.prefixes:
            return True
        if not collection:
            return True  # the reference keeps commits without a collection
        if self.collections is not None and collection in self.collections:
            return True
        return any(collection.startswith(p) for p in self.prefixes)

    def wants(self, kind: int, did: str, collection: str, size: int) -> bool:
        """The full rule for one event (used on replay; live fan-out uses index lookups instead)."""
        if self.dids is not None and did not in self.dids:
            return False
        if kind == KIND_COMMIT and not self.collection_matches(collection):
            return False
        return not (self.max_message_size and size > self.max_message_size)


def _collections(values: Sequence[Any]) -> tuple[frozenset[str] | None, tuple[str, ...]]:
    if not values:
        return None, ()
    if len(values) > MAX_WANTED_COLLECTIONS * _MAX_RAW_VALUES:
        raise InvalidFilter(f"too many wanted collections: {len(values)}")
    full: set[str] = set()
    prefixes: dict[str, None] = {}
    for raw in values:
        if not isinstance(raw, str):
            raise InvalidFilter("invalid collection: not a string")
        if raw.endswith(".*") and is_valid_nsid_glob(raw):
            prefixes[raw[:-1]] = None
        elif is_valid_nsid(raw):
            full.add(raw)
        else:
            raise InvalidFilter(f"invalid collection: {raw[:200]}")
        if len(full) + len(prefixes) > MAX_WANTED_COLLECTIONS:
            raise InvalidFilter(f"too many wanted collections: > {MAX_WANTED_COLLECTIONS}")
    return (frozenset(full) if full else None), tuple(prefixes)


def _dids(values: Sequence[Any]) -> frozenset[str] | None:
    if not values:
        return None
    if len(values) > MAX_WANTED_DIDS * _MAX_RAW_VALUES:
        raise InvalidFilter(f"too many wanted DIDs: {len(values)}")
    out: set[str] = set()
    for raw in values:
        if not isinstance(raw, str) or not is_valid_did(raw):
            shown = raw[:200] if isinstance(raw, str) else "not a string"
            raise InvalidFilter(f"invalid DID: {shown}")
        out.add(raw)
    if len(out) > MAX_WANTED_DIDS:
        raise InvalidFilter(f"too many wanted DIDs: {len(out)} > {MAX_WANTED_DIDS}")
    return frozenset(out)


def _build(collections: Sequence[Any], dids: Sequence[Any], max_size: int) -> Filter:
    full, prefixes = _collections(collections)
    return Filter(dids=_dids(dids), collections=full, prefixes=prefixes, max_message_size=max_size)


def parse_max_message_size(raw: str | None) -> int:
    """The query-string rule: anything but a non-negative integer that fits in 32 bits means no cap."""
    if not raw:
        return 0
    text = raw  # no trimming: " 7" is malformed, as for the reference's strconv.Atoi
    sign = text[:1] in ("+", "-")
    if not (text[sign:].isascii() and text[sign:].isdigit()):
        return 0
    value = int(text)
    return value if 0 <= value <= _UINT32_MAX else 0


def parse_query_filter(query: Mapping[str, Iterable[str]] | Any) -> Filter:
    """A filter from the ``/subscribe`` query (a multidict: ``getall`` is used for the repeatable names)."""
    getall = query.getall
    return _build(
        getall("wantedCollections", []),
        getall("wantedDids", []),
        parse_max_message_size(query.get("maxMessageSizeBytes")),
    )


def parse_options_update(payload: Any) -> Filter:
    """The filter an ``options_update`` payload asks for; it replaces the previous one entirely.

    Raises :class:`InvalidFilter` for a filter the query string would refuse, and :class:`TypeError` for a
    payload that is not the right JSON shape (the caller closes with "invalid frame payload data").
    """
    if payload is None:
        return Filter()
    if not isinstance(payload, dict):
        raise TypeError("options_update payload must be an object")
    collections = payload.get("wantedCollections")
    dids = payload.get("wantedDids")
    size = payload.get("maxMessageSizeBytes", 0)
    for name, value in (("wantedCollections", collections), ("wantedDids", dids)):
        if value is not None and not isinstance(value, list):
            raise TypeError(f"{name} must be an array of strings")
        if value is not None and not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name} must be an array of strings")
    if size is None:
        size = 0
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError("maxMessageSizeBytes must be an integer")
    if not _INT64_MIN <= size <= _INT64_MAX:
        raise TypeError("maxMessageSizeBytes is out of range")  # the reference's int cannot hold it either
    if size > _UINT32_MAX:
        size = 0  # as on the query string: a cap too large for 32 bits means no cap
    return _build(collections or [], dids or [], max(size, 0))
