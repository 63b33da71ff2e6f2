"""Checking lexicon documents themselves (the schema language, version 1).

Spec: atproto.com/specs/lexicon ("Lexicon Files", "Primary Type Definitions", "Field Type Definitions") and
atproto.com/specs/permission (``permission-set``). :func:`check_document` rejects a document that breaks the
language rules with :class:`LexiconError`; it does not need other documents, so references to other NSIDs are
only checked for syntax here (they are resolved when a validator is compiled). Unknown extra keys are ignored:
newer documents may carry fields this version does not know.
"""

from __future__ import annotations

import re
from typing import Any

from atstack.core.lexicon.errors import LexiconError
from atstack.core.lexicon.formats import FORMATS, is_valid_mime_pattern
from atstack.core.syntax import is_valid_language, is_valid_nsid, is_valid_record_key

__all__ = [
    "FIELD_TYPES",
    "PRIMARY_TYPES",
    "check_document",
    "is_valid_def_name",
    "is_valid_type_ref",
    "ref_key",
    "split_ref",
]

PRIMARY_TYPES = frozenset({"record", "query", "procedure", "subscription", "permission-set"})
# Types allowed where a data value is described (object properties, array items, bodies).
FIELD_TYPES = frozenset(
    {
        "boolean",
        "integer",
        "string",
        "bytes",
        "cid-link",
        "blob",
        "array",
        "object",
        "ref",
        "union",
        "unknown",
    }
)
# Types a named entry of `defs` may have: sub-types, ref, union and unknown can not be declared there.
NAMED_TYPES = PRIMARY_TYPES | {"boolean", "integer", "string", "bytes", "cid-link", "blob", "array", "object"}
NAMED_TYPES |= {"token"}
PARAM_SCALAR_TYPES = frozenset({"boolean", "integer", "string"})
PERMISSION_ACTIONS = frozenset({"create", "update", "delete"})

_DEF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
_ERROR_NAME = re.compile(r"[^\s]+")


def is_valid_def_name(name: str) -> bool:
    return _DEF_NAME.fullmatch(name) is not None


def split_ref(ref: str, base: str) -> tuple[str, str]:
    """``(nsid, def name)`` of a reference: ``#name`` is local to ``base``, a bare NSID means ``main``."""
    nsid, _, name = ref.partition("#")
    return (nsid or base), (name or "main")


def ref_key(nsid: str, name: str) -> str:
    """Canonical spelling of a definition, as it appears in ``$type``: ``main`` is the bare NSID."""
    return nsid if name == "main" else f"{nsid}#{name}"


def is_valid_type_ref(ref: str) -> bool:
    """Syntax of a fully qualified reference (``nsid`` or ``nsid#name``), e.g. a ``$type`` value."""
    nsid, sep, name = ref.partition("#")
    return is_valid_nsid(nsid) and (not sep or _DEF_NAME.fullmatch(name) is not None)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


class _Checker:
    __slots__ = ("local_refs", "nsid")

    def __init__(self, nsid: str) -> None:
        self.nsid = nsid
        self.local_refs: list[tuple[str, str]] = []

    def fail(self, where: str, message: str) -> LexiconError:
        return LexiconError(f"lexicon {self.nsid}: {where}: {message}")

    # -- shared helpers -------------------------------------------------------------------------------------

    def expect(
        self, where: str, d: dict[str, Any], key: str, ok: Any, what: str, required: bool = False
    ) -> None:
        if key not in d:
            if required:
                raise self.fail(where, f"missing required field {key!r}")
            return
        if not ok(d[key]):
            raise self.fail(where, f"{key!r} must be {what}")

    def string_list(self, where: str, d: dict[str, Any], key: str) -> list[str] | None:
        value = d.get(key)
        if value is None and key not in d:
            return None
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.fail(where, f"{key!r} must be an array of strings")
        return value

    def ref(self, where: str, ref: Any) -> None:
        if not isinstance(ref, str) or not ref:
            raise self.fail(where, "a reference must be a non-empty string")
        nsid, sep, name = ref.partition("#")
        if sep and not _DEF_NAME.fullmatch(name):
            raise self.fail(where, f"invalid definition name in reference {ref!r}")
        if nsid and not is_valid_nsid(nsid):
            raise self.fail(where, f"invalid NSID in reference {ref!r}")
        if not nsid and not sep:
            raise self.fail(where, f"invalid reference {ref!r}")
        if not nsid or nsid == self.nsid:
            self.local_refs.append((where, name or "main"))

    # -- field types ----------------------------------------------------------------------------------------

    def field(self, where: str, d: Any, allowed: frozenset[str] = FIELD_TYPES) -> None:
        if not isinstance(d, dict):
            raise self.fail(where, "a schema definition must be an object")
        t = d.get("type")
        if not isinstance(t, str):
            raise self.fail(where, "missing 'type'")
        if t not in allowed:
            raise self.fail(where, f"type {t!r} is not allowed here")
        self.expect(where, d, "description", lambda v: isinstance(v, str), "a string")
        getattr(self, "t_" + t.replace("-", "_"))(where, d)

    def t_boolean(self, where: str, d: dict[str, Any]) -> None:
        for key in ("default", "const"):
            self.expect(where, d, key, lambda v: type(v) is bool, "a boolean")

    def t_integer(self, where: str, d: dict[str, Any]) -> None:
        for key in ("minimum", "maximum", "default", "const"):
            self.expect(where, d, key, _is_int, "an integer")
        enum = d.get("enum")
        if "enum" in d and (not isinstance(enum, list) or not all(_is_int(x) for x in enum)):
            raise self.fail(where, "'enum' must be an array of integers")
        if _is_int(d.get("minimum")) and _is_int(d.get("maximum")) and d["minimum"] > d["maximum"]:
            raise self.fail(where, "'minimum' is greater than 'maximum'")

    def t_string(self, where: str, d: dict[str, Any]) -> None:
        fmt = d.get("format")
        if "format" in d and fmt not in FORMATS:
            raise self.fail(where, f"unknown string format {fmt!r}")
        for key in ("minLength", "maxLength", "minGraphemes", "maxGraphemes"):
            self.expect(where, d, key, _is_count, "a non-negative integer")
        for key in ("default", "const"):
            self.expect(where, d, key, lambda v: isinstance(v, str), "a string")
        if "default" in d and "const" in d:
            raise self.fail(where, "'const' and 'default' are mutually exclusive")
        self.string_list(where, d, "enum")
        self.string_list(where, d, "knownValues")

    def t_bytes(self, where: str, d: dict[str, Any]) -> None:
        for key in ("minLength", "maxLength"):
            self.expect(where, d, key, _is_count, "a non-negative integer")

    def t_cid_link(self, where: str, d: dict[str, Any]) -> None:
        pass

    def t_unknown(self, where: str, d: dict[str, Any]) -> None:
        pass

    def t_token(self, where: str, d: dict[str, Any]) -> None:
        pass

    def t_blob(self, where: str, d: dict[str, Any]) -> None:
        accept = self.string_list(where, d, "accept")
        for pattern in accept or ():
            if not is_valid_mime_pattern(pattern):
                raise self.fail(where, f"invalid MIME type pattern {pattern!r} in 'accept'")
        self.expect(where, d, "maxSize", _is_count, "a non-negative integer")

    def t_array(self, where: str, d: dict[str, Any]) -> None:
        if "items" not in d:
            raise self.fail(where, "array is missing 'items'")
        self.field(f"{where}/items", d["items"])
        for key in ("minLength", "maxLength"):
            self.expect(where, d, key, _is_count, "a non-negative integer")

    def t_object(self, where: str, d: dict[str, Any]) -> None:
        props = d.get("properties")
        if not isinstance(props, dict):
            raise self.fail(where, "object is missing 'properties'")
        for name, prop in props.items():
            self.field(f"{where}/{name}", prop)
        for key in ("required", "nullable"):
            for name in self.string_list(where, d, key) or ():
                if name not in props:
                    raise self.fail(where, f"{key} property {name!r} is not defined in 'properties'")

    def t_ref(self, where: str, d: dict[str, Any]) -> None:
        if "ref" not in d:
            raise self.fail(where, "ref is missing 'ref'")
        self.ref(where, d["ref"])

    def t_union(self, where: str, d: dict[str, Any]) -> None:
        refs = d.get("refs")
        if not isinstance(refs, list):
            raise self.fail(where, "union is missing 'refs'")
        for ref in refs:
            self.ref(where, ref)
        self.expect(where, d, "closed", lambda v: type(v) is bool, "a boolean")
        if d.get("closed") is True and not refs:
            raise self.fail(where, "a closed union needs at least one ref")

    # -- primary types --------------------------------------------------------------------------------------

    def t_record(self, where: str, d: dict[str, Any]) -> None:
        key = d.get("key")
        if not isinstance(key, str) or not _is_valid_key_type(key):
            raise self.fail(where, f"invalid record key type {key!r}")
        record = d.get("record")
        if not isinstance(record, dict) or record.get("type") != "object":
            raise self.fail(where, "'record' must be a schema of type 'object'")
        self.field(f"{where}/record", record)

    def params(self, where: str, d: Any) -> None:
        if not isinstance(d, dict) or d.get("type") != "params":
            raise self.fail(where, "'parameters' must be of type 'params'")
        props = d.get("properties")
        if not isinstance(props, dict):
            raise self.fail(where, "params is missing 'properties'")
        for name, prop in props.items():
            pwhere = f"{where}/{name}"
            self.field(pwhere, prop, PARAM_SCALAR_TYPES | {"array"})
            if prop["type"] == "array":
                items = prop["items"]
                if items.get("type") not in PARAM_SCALAR_TYPES:
                    raise self.fail(pwhere, "array parameters may only hold boolean, integer or string")
        for name in self.string_list(where, d, "required") or ():
            if name not in props:
                raise self.fail(where, f"required parameter {name!r} is not defined in 'properties'")

    def body(self, where: str, d: Any) -> None:
        if not isinstance(d, dict):
            raise self.fail(where, "must be an object")
        encoding = d.get("encoding")
        if not isinstance(encoding, str) or not encoding:
            raise self.fail(where, "missing 'encoding'")
        self.expect(where, d, "description", lambda v: isinstance(v, str), "a string")
        if "schema" in d:
            self.field(f"{where}/schema", d["schema"], frozenset({"object", "ref", "union"}))

    def errors(self, where: str, d: dict[str, Any]) -> None:
        if "errors" not in d:
            return
        errors = d["errors"]
        if not isinstance(errors, list):
            raise self.fail(where, "'errors' must be an array")
        for err in errors:
            name = err.get("name") if isinstance(err, dict) else None
            if not isinstance(name, str) or not _ERROR_NAME.fullmatch(name):
                raise self.fail(where, f"invalid error declaration {err!r}")

    def t_query(self, where: str, d: dict[str, Any]) -> None:
        self.xrpc(where, d, allow_input=False)

    def t_procedure(self, where: str, d: dict[str, Any]) -> None:
        self.xrpc(where, d, allow_input=True)

    def xrpc(self, where: str, d: dict[str, Any], allow_input: bool) -> None:
        if "parameters" in d:
            self.params(f"{where}/parameters", d["parameters"])
        if "input" in d:
            if not allow_input:
                raise self.fail(where, "a query can not have an 'input'")
            self.body(f"{where}/input", d["input"])
        if "output" in d:
            self.body(f"{where}/output", d["output"])
        self.errors(where, d)

    def t_subscription(self, where: str, d: dict[str, Any]) -> None:
        if "parameters" in d:
            self.params(f"{where}/parameters", d["parameters"])
        message = d.get("message")
        if not isinstance(message, dict) or "schema" not in message:
            raise self.fail(where, "subscription is missing 'message.schema'")
        self.field(f"{where}/message/schema", message["schema"], frozenset({"union"}))
        self.errors(where, d)

    def t_permission_set(self, where: str, d: dict[str, Any]) -> None:
        for key in ("title", "detail"):
            self.expect(where, d, key, lambda v: isinstance(v, str), "a string")
            localized = d.get(f"{key}:lang")
            if f"{key}:lang" in d and not (
                isinstance(localized, dict)
                and all(is_valid_language(k) and isinstance(v, str) for k, v in localized.items())
            ):
                raise self.fail(where, f"'{key}:lang' must map language tags to strings")
        perms = d.get("permissions")
        if not isinstance(perms, list):
            raise self.fail(where, "permission-set is missing 'permissions'")
        for i, perm in enumerate(perms):
            self.permission(f"{where}/permissions/{i}", perm)

    def permission(self, where: str, p: Any) -> None:
        if not isinstance(p, dict) or p.get("type") != "permission":
            raise self.fail(where, "must be of type 'permission'")
        resource = p.get("resource")
        if not isinstance(resource, str) or not resource:
            raise self.fail(where, "missing 'resource'")
        # Other resources (blob, account, identity, future ones) are ignored in schemas, not rejected.
        if resource == "repo":
            collections = self.string_list(where, p, "collection")
            if not collections or len(set(collections)) != len(collections):
                raise self.fail(where, "'collection' must be a non-empty array of unique NSIDs")
            if not all(is_valid_nsid(c) for c in collections):
                raise self.fail(where, "'collection' entries must be NSIDs (no wildcard in a lexicon)")
            actions = self.string_list(where, p, "action")
            if actions is not None and (
                len(set(actions)) != len(actions) or not set(actions) <= PERMISSION_ACTIONS
            ):
                raise self.fail(where, "'action' must be unique values of create, update, delete")
        elif resource == "rpc":
            lxm = self.string_list(where, p, "lxm")
            # The spec text excludes a `*` method in schemas, but the interop catalog uses one (with an
            # inherited audience); we accept it and keep the rule that method and audience are not both `*`.
            if not lxm or not all(m == "*" or is_valid_nsid(m) for m in lxm):
                raise self.fail(where, "'lxm' must be a non-empty array of NSIDs")
            self.expect(where, p, "inheritAud", lambda v: type(v) is bool, "a boolean")
            aud = p.get("aud")
            if "aud" in p and aud != "*":
                raise self.fail(where, "'aud' in a permission set can only be the wildcard '*'")
            if aud is None and p.get("inheritAud") is not True:
                raise self.fail(where, "'aud' is required unless 'inheritAud' is true")
            if aud == "*" and "*" in lxm:
                raise self.fail(where, "'aud' and 'lxm' can not both be wildcards")


def _is_valid_key_type(key: str) -> bool:
    if key in ("tid", "nsid", "any"):
        return True
    return key.startswith("literal:") and is_valid_record_key(key[8:])


def check_document(doc: Any) -> None:
    """Raise :class:`LexiconError` unless ``doc`` is a valid lexicon (version 1) document."""
    if not isinstance(doc, dict):
        raise LexiconError("a lexicon document must be a JSON object")
    nsid = doc.get("id")
    if not isinstance(nsid, str) or not is_valid_nsid(nsid):
        raise LexiconError(f"lexicon 'id' must be a valid NSID, got {nsid!r}")
    if type(doc.get("lexicon")) is not int or doc["lexicon"] != 1:
        raise LexiconError(f"lexicon {nsid}: 'lexicon' must be the integer 1")
    if "description" in doc and not isinstance(doc["description"], str):
        raise LexiconError(f"lexicon {nsid}: 'description' must be a string")
    defs = doc.get("defs")
    if not isinstance(defs, dict) or not defs:
        raise LexiconError(f"lexicon {nsid}: 'defs' must be a non-empty object")
    checker = _Checker(nsid)
    for name, d in defs.items():
        if not isinstance(name, str) or not _DEF_NAME.fullmatch(name):
            raise LexiconError(f"lexicon {nsid}: invalid definition name {name!r}")
        where = f"#{name}"
        t = d.get("type") if isinstance(d, dict) else None
        if t in PRIMARY_TYPES and name != "main":
            raise checker.fail(where, f"primary type {t!r} must be the 'main' definition")
        checker.field(where, d, NAMED_TYPES)
    for where, name in checker.local_refs:
        if name not in defs:
            raise checker.fail(where, f"reference to undefined local definition #{name}")
