"""XRPC query parameters: decoding from the query string and validating against ``params``.

Spec: atproto.com/specs/xrpc ("Lexicon HTTP Endpoints") and atproto.com/specs/lexicon (``params``). Query
strings only carry text, so each value is decoded by its declared type: integers as base-10 digits, booleans
as exactly ``true``/``false``, arrays as the parameter repeated. Declared ``default`` values are filled in for
absent parameters. Parameters the lexicon does not declare are ignored and left out of the result, as the
reference implementation does (schemas evolve; old servers must not reject new clients).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atstack.core.lexicon.compiler import Compiler
from atstack.core.lexicon.errors import Invalid
from atstack.core.lexicon.validate import Validator

__all__ = ["ParamSpec", "compile_params", "decode_params"]

_MISSING: Any = object()
# Bounded so int() never sees a huge string; the integer validator then applies the 64-bit range.
_INTEGER = re.compile(r"-?[0-9]{1,20}")


@dataclass(slots=True, frozen=True)
class ParamSpec:
    name: str
    kind: str  # scalar type: "boolean" | "integer" | "string"
    is_array: bool
    required: bool
    default: Any
    validator: Validator


def compile_params(compiler: Compiler, base: str, params: dict[str, Any] | None) -> tuple[ParamSpec, ...]:
    if not params:
        return ()
    required = set(params.get("required", ()))
    specs = []
    for name, prop in params.get("properties", {}).items():
        is_array = prop["type"] == "array"
        kind = prop["items"]["type"] if is_array else prop["type"]
        default = prop.get("default", _MISSING) if not is_array else _MISSING
        specs.append(ParamSpec(name, kind, is_array, name in required, default, compiler.field(base, prop)))
    return tuple(specs)


def _decode_scalar(kind: str, text: str) -> Any:
    if kind == "integer":
        if _INTEGER.fullmatch(text) is None:
            raise Invalid("must be an integer")
        return int(text)
    if kind == "boolean":
        if text == "true":
            return True
        if text == "false":
            return False
        raise Invalid('must be a boolean ("true" or "false")')
    return text


def decode_params(specs: tuple[ParamSpec, ...], raw: Mapping[str, str | list[str]]) -> dict[str, Any]:
    """Decoded, defaulted and validated parameters; raises :class:`Invalid` (path = parameter name).

    ``raw`` maps a name to its one value or to the list of its repeated values; a multidict with
    ``getall()`` (one entry per occurrence) works as is.
    """
    out: dict[str, Any] = {}
    # A multi-valued mapping (aiohttp's request.query) gives every occurrence through getall().
    getall = getattr(raw, "getall", None)
    for spec in specs:
        name = spec.name
        value = getall(name, _MISSING) if getall is not None else raw.get(name, _MISSING)
        if isinstance(value, (list, tuple)) and not value:
            value = _MISSING
        if value is _MISSING:
            if spec.default is not _MISSING:
                out[name] = spec.default
            elif spec.required:
                raise Invalid(f'must have the property "{name}"')
            continue
        try:
            if spec.is_array:
                texts = [value] if isinstance(value, str) else list(value)
                decoded: Any = []
                for i, text in enumerate(texts):
                    try:
                        decoded.append(_decode_scalar(spec.kind, _as_text(text)))
                    except Invalid as e:
                        e.segments.append(str(i))
                        raise
            else:
                if not isinstance(value, str):
                    if len(value) != 1:
                        raise Invalid("must be given only once (it is not an array)")
                    value = value[0]
                decoded = _decode_scalar(spec.kind, _as_text(value))
            spec.validator(decoded)
        except Invalid as e:
            e.segments.append(name)
            raise
        out[name] = decoded
    return out


def _as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a query-string value (text)")
    return value
