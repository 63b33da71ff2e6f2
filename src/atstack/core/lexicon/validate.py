"""Validators for the lexicon field types (objects are in :mod:`.objects`) and the schema-free data-model check.

Spec: atproto.com/specs/lexicon ("Field Type Definitions", "When to use $type") and atproto.com/specs/data-model
(types, blob objects, no floats). Each schema becomes a closure ``check(value) -> None`` that raises
:class:`Invalid` on the first problem; the closures capture their constraints, so validating a record is a walk
over the data with no schema lookups. Error paths are collected only while an error unwinds.

Values are in the data-model form: CIDs are :class:`~atstack.core.cid.CID`, bytes are ``bytes``, blob objects
are dicts whose ``ref`` is a CID. Fields a schema does not declare (and ``unknown`` values, and variants of an
open union this catalog does not list) are still checked against the data model: no floats, 64-bit integers,
string keys, well-formed blob objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import regex

from atstack.core.cid import CID
from atstack.core.lexicon.errors import Invalid
from atstack.core.lexicon.formats import FORMATS, mime_matcher
from atstack.core.lexicon.schema import is_valid_type_ref
from atstack.core.syntax import is_valid_cid

__all__ = [
    "Validator",
    "check_cid_link",
    "check_data",
    "check_unknown",
    "grapheme_count",
    "make_array",
    "make_blob",
    "make_boolean",
    "make_bytes",
    "make_integer",
    "make_record",
    "make_string",
    "make_union",
]

Validator = Callable[[Any], None]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 32
_LEAVES = frozenset({str, bool, type(None), bytes, CID})
_GRAPHEME = regex.compile(r"\X")


def grapheme_count(s: str) -> int:
    """Extended grapheme clusters in ``s`` (ASCII fast path: only CR LF joins two code points)."""
    if s.isascii():
        return len(s) - s.count("\r\n")
    return len(_GRAPHEME.findall(s))


def _more_graphemes_than(s: str, limit: int, match_limit_plus_one: Callable[[str], Any]) -> bool:
    if s.isascii():
        return len(s) - s.count("\r\n") > limit
    return match_limit_plus_one(s) is not None


def _utf8_length(s: str) -> int:
    if s.isascii():
        return len(s)
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid("must be valid Unicode (no lone surrogates)") from None


# -- data model --------------------------------------------------------------------------------------------


def _check_blob_fields(value: dict[str, Any]) -> tuple[str, int]:
    if type(value.get("ref")) is not CID:
        raise Invalid("must be a blob: 'ref' must be a CID link")
    mime = value.get("mimeType")
    if not isinstance(mime, str) or not mime:
        raise Invalid("must be a blob: 'mimeType' must be a non-empty string")
    size = value.get("size")
    if type(size) is not int or size < 0:
        raise Invalid("must be a blob: 'size' must be a non-negative integer")
    return mime, size


def check_data(value: Any, depth: int = 0) -> None:
    """Raise :class:`Invalid` unless ``value`` is valid atproto data-model content (schema-free check)."""
    t = type(value)
    if t in _LEAVES:
        return
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise Invalid("must be an integer within the signed 64-bit range")
        return
    if t is dict:
        if depth >= MAX_DEPTH:
            raise Invalid(f"is nested deeper than {MAX_DEPTH} levels")
        if value.get("$type") == "blob":
            _check_blob_fields(value)
        for k, v in value.items():
            if type(k) is not str:
                raise Invalid("must have only string keys")
            if type(v) in _LEAVES:
                continue
            try:
                check_data(v, depth + 1)
            except Invalid as e:
                e.segments.append(k)
                raise
        return
    if t is list:
        if depth >= MAX_DEPTH:
            raise Invalid(f"is nested deeper than {MAX_DEPTH} levels")
        for i, v in enumerate(value):
            if type(v) in _LEAVES:
                continue
            try:
                check_data(v, depth + 1)
            except Invalid as e:
                e.segments.append(str(i))
                raise
        return
    if t is float:
        raise Invalid("must not be a float (floats are not allowed in atproto data)")
    raise Invalid(f"is not an atproto data-model value (got {t.__name__})")


# -- concrete types ----------------------------------------------------------------------------------------


def make_boolean(d: dict[str, Any]) -> Validator:
    const = d.get("const")

    def check(v: Any) -> None:
        if type(v) is not bool:
            raise Invalid("must be a boolean")
        if const is not None and v is not const:
            raise Invalid(f"must be {str(const).lower()}")

    return check


def make_integer(d: dict[str, Any]) -> Validator:
    const = d.get("const")
    enum = frozenset(d["enum"]) if "enum" in d else None
    minimum = d.get("minimum")
    maximum = d.get("maximum")
    lo = INT64_MIN if minimum is None else max(minimum, INT64_MIN)
    hi = INT64_MAX if maximum is None else min(maximum, INT64_MAX)

    def check(v: Any) -> None:
        if type(v) is not int:
            if type(v) is float:
                raise Invalid("must be an integer (floats are not allowed)")
            raise Invalid("must be an integer")
        if v < lo:
            raise Invalid(f"can not be less than {lo}")
        if v > hi:
            raise Invalid(f"can not be greater than {hi}")
        if const is not None and v != const:
            raise Invalid(f"must be {const}")
        if enum is not None and v not in enum:
            raise Invalid(f"must be one of ({', '.join(map(str, sorted(enum)))})")

    return check


def make_string(d: dict[str, Any]) -> Validator:
    fmt_name = d.get("format")
    fmt = FORMATS[fmt_name] if fmt_name is not None else None
    const = d.get("const")
    enum = frozenset(d["enum"]) if "enum" in d else None
    min_len, max_len = d.get("minLength"), d.get("maxLength")
    min_g, max_g = d.get("minGraphemes"), d.get("maxGraphemes")
    has_len = min_len is not None or max_len is not None
    has_g = min_g is not None or max_g is not None
    over_max = regex.compile(rf"\X{{{max_g + 1}}}", regex.S).match if max_g is not None else None
    reach_min = regex.compile(rf"\X{{{min_g}}}", regex.S).match if min_g is not None else None

    if not (fmt or has_len or has_g or const is not None or enum is not None):

        def plain(v: Any) -> None:
            if type(v) is not str:
                raise Invalid("must be a string")

        return plain

    def check(v: Any) -> None:
        if type(v) is not str:
            raise Invalid("must be a string")
        if const is not None and v != const:
            raise Invalid(f"must be {const!r}")
        if enum is not None and v not in enum:
            raise Invalid(f"must be one of ({', '.join(sorted(enum))})")
        if has_len:
            n = len(v)
            # Code points bound the UTF-8 size to [n, 4n]: most strings are decided without encoding.
            if max_len is not None and n * 4 > max_len and (n > max_len or _utf8_length(v) > max_len):
                raise Invalid(f"must not be longer than {max_len} bytes (UTF-8)")
            if min_len is not None and n < min_len and _utf8_length(v) < min_len:
                raise Invalid(f"must not be shorter than {min_len} bytes (UTF-8)")
        if has_g:
            n = len(v)
            # Graphemes never outnumber code points, so short strings pass a maximum without counting; for
            # non-ASCII text the regex engine matches just max+1 (or min) clusters instead of counting all.
            if max_g is not None and n > max_g and _more_graphemes_than(v, max_g, over_max):
                raise Invalid(f"must not be longer than {max_g} graphemes")
            if min_g is not None and (n < min_g or not _more_graphemes_than(v, min_g - 1, reach_min)):
                raise Invalid(f"must not be shorter than {min_g} graphemes")
        if fmt is not None and not fmt(v):
            raise Invalid(f"must be a valid {fmt_name}")

    return check


def make_bytes(d: dict[str, Any]) -> Validator:
    min_len, max_len = d.get("minLength"), d.get("maxLength")

    def check(v: Any) -> None:
        if type(v) is not bytes:
            raise Invalid("must be bytes")
        if max_len is not None and len(v) > max_len:
            raise Invalid(f"must not be larger than {max_len} bytes")
        if min_len is not None and len(v) < min_len:
            raise Invalid(f"must not be smaller than {min_len} bytes")

    return check


def check_cid_link(v: Any) -> None:
    if type(v) is not CID:
        raise Invalid("must be a CID link")


def make_blob(d: dict[str, Any]) -> Validator:
    accepts = mime_matcher(d["accept"]) if "accept" in d else None
    accept_text = ", ".join(d.get("accept", ()))
    max_size = d.get("maxSize")

    def check(v: Any) -> None:
        if type(v) is not dict:
            raise Invalid("must be a blob")
        if "$type" in v:
            if v["$type"] != "blob":
                raise Invalid("must be a blob ($type 'blob')")
            mime, size = _check_blob_fields(v)
        elif "cid" in v:
            # Legacy form {cid, mimeType}: readable, has no size to check.
            cid, mime = v["cid"], v.get("mimeType")
            if not isinstance(cid, str) or not is_valid_cid(cid):
                raise Invalid("must be a blob: legacy 'cid' must be a CID string")
            if not isinstance(mime, str) or not mime:
                raise Invalid("must be a blob: 'mimeType' must be a non-empty string")
            size = None
        else:
            raise Invalid("must be a blob")
        if accepts is not None and not accepts(mime):
            raise Invalid(f"has MIME type {mime!r}, which is not one of ({accept_text})")
        if max_size is not None and size is not None and size > max_size:
            raise Invalid(f"must not be larger than {max_size} bytes (size {size})")

    return check


def check_unknown(v: Any) -> None:
    if type(v) is not dict:
        raise Invalid("must be an object")
    if v.get("$type") == "blob" or "$link" in v or "$bytes" in v:
        raise Invalid("must be an object, not a blob, CID link or bytes")
    check_data(v)


# -- containers --------------------------------------------------------------------------------------------


def make_array(item: Validator, d: dict[str, Any]) -> Validator:
    min_len, max_len = d.get("minLength"), d.get("maxLength")

    def check(v: Any) -> None:
        if type(v) is not list:
            raise Invalid("must be an array")
        if max_len is not None and len(v) > max_len:
            raise Invalid(f"must not have more than {max_len} elements")
        if min_len is not None and len(v) < min_len:
            raise Invalid(f"must not have fewer than {min_len} elements")
        for i, x in enumerate(v):
            try:
                item(x)
            except Invalid as e:
                e.segments.append(str(i))
                raise

    return check


def make_record(nsid: str, obj: Validator) -> Validator:
    def check(v: Any) -> None:
        if type(v) is not dict:
            raise Invalid("must be an object")
        if v.get("$type") != nsid:
            e = Invalid(f'must be "{nsid}"')
            e.segments.append("$type")
            raise e
        obj(v)

    return check


def make_union(variants: dict[str, Validator], closed: bool, refs: list[str]) -> Validator:
    get = variants.get

    def check(v: Any) -> None:
        if type(v) is not dict or type(t := v.get("$type")) is not str:
            raise Invalid('must be an object which includes the "$type" property')
        f = get(t)
        if f is not None:
            f(v)
            return
        if t.endswith("#main"):
            raise Invalid(f'$type "{t}" must not end in "#main" (use the bare NSID)')
        if closed:
            raise Invalid(f"$type must be one of ({', '.join(refs)})")
        if not is_valid_type_ref(t):
            raise Invalid(f'$type "{t}" is not a valid lexicon reference')
        check_data(v)

    return check
