"""Compiling lexicon definitions into validators, with reference resolution and caching.

Spec: atproto.com/specs/lexicon (``ref``, ``union``: refs are ``nsid#name``, a bare NSID is ``main``, ``#name``
is local; a ref may not target a token; union variants are objects or records). Each definition is compiled
once per catalog state; recursive definitions are tied through the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atstack.core.lexicon import validate as prim
from atstack.core.lexicon.errors import LexiconError
from atstack.core.lexicon.objects import compile_object
from atstack.core.lexicon.schema import ref_key, split_ref
from atstack.core.lexicon.validate import Validator

__all__ = ["Compiler", "DefLookup", "union_variants"]

DefLookup = Callable[[str, str], "dict[str, Any] | None"]


def union_variants(compiler: Compiler, base: str, refs: list[str]) -> dict[str, Validator]:
    """``$type`` spelling → validator for each ref of a union (shared with subscription messages)."""
    variants: dict[str, Validator] = {}
    for ref in refs:
        nsid, name = split_ref(ref, base)
        target = compiler.lookup(nsid, name)
        if target is not None and target.get("type") not in ("object", "record"):
            raise LexiconError(f"union ref {ref} (in {base}) must point to an object or record")
        variants[ref_key(nsid, name)] = compiler.def_validator(nsid, name)
    return variants


class Compiler:
    """Builds and caches validators for the definitions that ``lookup(nsid, name)`` returns.

    References are resolved at compile time; a reference to a definition that is not loaded compiles to a
    validator that raises :class:`LexiconError` only if data actually reaches it (so one missing, unused
    lexicon does not break every record). With ``strict=True`` it raises while compiling instead.
    """

    __slots__ = ("_building", "_cache", "lookup", "strict")

    def __init__(self, lookup: DefLookup, *, strict: bool = False) -> None:
        self.lookup = lookup
        self.strict = strict
        self._cache: dict[str, Validator] = {}
        self._building: set[str] = set()

    def def_validator(self, nsid: str, name: str) -> Validator:
        key = ref_key(nsid, name)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if key in self._building:
            # A recursive schema (e.g. a thread view containing thread views): defer to the cache entry the
            # outer compilation is about to store.
            cache = self._cache
            return lambda value: cache[key](value)
        d = self.lookup(nsid, name)
        if d is None:
            if self.strict:
                raise LexiconError(f"unresolved lexicon reference {key}")

            def unresolved(value: Any) -> None:
                raise LexiconError(f"unresolved lexicon reference {key}")

            return unresolved
        self._building.add(key)
        try:
            validator = self._named(nsid, key, d)
        finally:
            self._building.discard(key)
        self._cache[key] = validator
        return validator

    def _named(self, nsid: str, key: str, d: dict[str, Any]) -> Validator:
        t = d.get("type")
        if t == "record":
            return prim.make_record(nsid, self.field(nsid, d["record"]))
        if t == "token":
            raise LexiconError(f"{key} is a token and can not be used as a data type")
        if t in ("query", "procedure", "subscription", "permission-set"):
            raise LexiconError(f"{key} is a {t} and can not be used as a data type")
        return self.field(nsid, d)

    def field(self, base: str, d: dict[str, Any]) -> Validator:
        """Validator for an inline schema ``d`` appearing in the lexicon ``base``."""
        t = d["type"]
        if t == "string":
            return prim.make_string(d)
        if t == "object":
            props = [(name, prop, self.field(base, prop)) for name, prop in d.get("properties", {}).items()]
            return compile_object(props, list(d.get("required", ())), list(d.get("nullable", ())))
        if t == "ref":
            return self.def_validator(*split_ref(d["ref"], base))
        if t == "union":
            return prim.make_union(union_variants(self, base, d["refs"]), d.get("closed") is True, d["refs"])
        if t == "array":
            return prim.make_array(self.field(base, d["items"]), d)
        if t == "integer":
            return prim.make_integer(d)
        if t == "boolean":
            return prim.make_boolean(d)
        if t == "blob":
            return prim.make_blob(d)
        if t == "bytes":
            return prim.make_bytes(d)
        if t == "cid-link":
            return prim.check_cid_link
        if t == "unknown":
            return prim.check_unknown
        raise LexiconError(f"type {t!r} can not describe a data value (in {base})")
