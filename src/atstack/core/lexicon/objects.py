"""Object validators, generated as straight-line Python per lexicon ``object`` definition.

Spec: atproto.com/specs/lexicon (``object``: ``properties``, ``required``, ``nullable``; unexpected fields are
ignored). Objects are where validation time goes (a post with an image embed, a reply and two facets has 13
of them), so each definition becomes one function with a block per declared property instead of a loop that
calls a closure per field. Common property types get an inline *accept test* (``type(x) is str``, an integer
range, a short string under its limits); a value that fails the test is handed to the property's full
validator, which produces the error, so the inline code never decides a rejection on its own.

Only ``repr()`` of property names and integers reaches the generated source; everything else is passed in
the function's namespace.
"""

from __future__ import annotations

from typing import Any

from atstack.core.cid import CID
from atstack.core.lexicon.errors import Invalid
from atstack.core.lexicon.formats import FORMATS
from atstack.core.lexicon.validate import INT64_MAX, INT64_MIN, Validator, check_data

__all__ = ["compile_object"]

_MISSING: Any = object()
_LEAVES = (str, bool, type(None), bytes, CID)


def _accept_test(d: dict[str, Any], ns: dict[str, Any], i: int) -> str | None:
    """A Python expression over ``x`` that is true only for values the full validator would accept."""
    t = d.get("type")
    if t == "string":
        if "const" in d or "enum" in d or "minLength" in d or "minGraphemes" in d:
            return None
        fmt = d.get("format")
        limits = []
        if "maxGraphemes" in d:
            limits.append(d["maxGraphemes"])  # graphemes ≤ code points
        if "maxLength" in d:
            limits.append(d["maxLength"] // 4)  # UTF-8 bytes ≤ 4 × code points
        test = "type(x) is str"
        if limits:
            test += f" and len(x) <= {int(min(limits))}"
        if fmt is not None:
            ns[f"fmt{i}"] = FORMATS[fmt]
            test += f" and fmt{i}(x)"
        return test
    if t == "integer":
        if "const" in d or "enum" in d:
            return None
        lo = max(int(d.get("minimum", INT64_MIN)), INT64_MIN)
        hi = min(int(d.get("maximum", INT64_MAX)), INT64_MAX)
        return f"type(x) is int and {lo} <= x <= {hi}"
    if t == "boolean":
        return None if "const" in d else "type(x) is bool"
    if t == "cid-link":
        return "type(x) is CID"
    return None


def compile_object(
    props: list[tuple[str, dict[str, Any], Validator]], required: list[str], nullable: list[str]
) -> Validator:
    """Validator for an object with ``props`` as ``(name, schema, full validator)`` triples."""
    required_set, nullable_set = set(required), set(nullable)
    known = frozenset(name for name, _, _ in props)
    ns: dict[str, Any] = {"Invalid": Invalid, "M": _MISSING, "CID": CID, "extras": _extras_checker(known)}
    src = [
        "def check(v):",
        "    if type(v) is not dict:",
        "        raise Invalid('must be an object')",
        "    seen = 0",
    ]
    for i, (name, schema, validator) in enumerate(props):
        key = repr(name)
        ns[f"f{i}"] = validator
        src += [f"    x = v.get({key}, M)", "    if x is not M:", "        seen += 1"]
        nullable_guard = name in nullable_set
        test = _accept_test(schema, ns, i)
        conditions = (["x is not None"] if nullable_guard else []) + ([f"not ({test})"] if test else [])
        pad = "        "
        if conditions:
            src.append(f"        if {' and '.join(conditions)}:")
            pad += "    "
        src += [
            f"{pad}try:",
            f"{pad}    f{i}(x)",
            f"{pad}except Invalid as e:",
            f"{pad}    e.segments.append({key})",
            f"{pad}    raise",
        ]
        if name in required_set:
            message = repr(f'must have the property "{name}"')
            src += ["    else:", f"        raise Invalid({message})"]
    src += ["    if seen != len(v):", "        extras(v)"]
    exec(compile("\n".join(src), "<lexicon object validator>", "exec"), ns)
    return ns["check"]  # type: ignore[no-any-return]


def _extras_checker(known: frozenset[str]) -> Validator:
    def extras(v: dict[Any, Any]) -> None:
        # Undeclared fields are allowed (schemas evolve) but must still be data-model content.
        for k, x in v.items():
            if k in known:
                continue
            if type(k) is not str:
                raise Invalid("must have only string keys")
            if isinstance(x, _LEAVES):
                continue
            try:
                check_data(x)
            except Invalid as e:
                e.segments.append(k)
                raise

    return extras
