"""The Lexicon ``language`` string format: BCP-47 language tags (RFC 5646).

Spec: atproto.com/specs/lexicon ("language") asks for a *well-formed* tag (RFC 5646 §2.1 grammar,
case-insensitive). The strict check adds what the current interop vectors treat as parse errors (checklist §0
drift note): a repeated variant or extension singleton (RFC 5646 §2.2.5, §2.2.6), and a primary language subtag
that is not 2-3 lowercase letters (so ``JA`` and ``jaja`` are well-formed but refused strictly). Grandfathered
tags and private-use-only tags (``x-…``) are accepted as they are.
"""

from __future__ import annotations

import re

from atstack.core.syntax.errors import InvalidSyntax

__all__ = [
    "ensure_valid_language",
    "ensure_valid_language_strict",
    "is_valid_language",
    "is_valid_language_strict",
]

# RFC 5646 §2.1 "grandfathered" (irregular + regular), compared case-insensitively.
_GRANDFATHERED = frozenset(
    tag.lower()
    for tag in (
        "en-GB-oed",
        "i-ami",
        "i-bnn",
        "i-default",
        "i-enochian",
        "i-hak",
        "i-klingon",
        "i-lux",
        "i-mingo",
        "i-navajo",
        "i-pwn",
        "i-tao",
        "i-tay",
        "i-tsu",
        "sgn-BE-FR",
        "sgn-BE-NL",
        "sgn-CH-DE",
        "art-lojban",
        "cel-gaulish",
        "no-bok",
        "no-nyn",
        "zh-guoyu",
        "zh-hakka",
        "zh-min",
        "zh-min-nan",
        "zh-xiang",
    )
)

_LANGTAG = (
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"  # language (+ up to three extlang)
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"  # variants
    r"(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*"  # extensions (singleton other than x)
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"  # private use
)
_PRIVATEUSE = r"x(?:-[a-z0-9]{1,8})+"
_language_match = re.compile(rf"{_LANGTAG}|{_PRIVATEUSE}", re.IGNORECASE | re.ASCII).fullmatch
_LANGUAGE_MAX = 128
# The everyday shapes (``en``, ``pt-BR``, ``zh-Hant``, ``es-419``) cannot repeat a subtag: strict fast path.
_simple_strict_match = re.compile(r"[a-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?").fullmatch


def is_valid_language(s: str) -> bool:
    """Well-formed BCP-47 (grammar only)."""
    return (
        isinstance(s, str)
        and len(s) <= _LANGUAGE_MAX
        and (_language_match(s) is not None or s.lower() in _GRANDFATHERED)
    )


def _syntax_problem(s: object) -> str:
    if not isinstance(s, str):
        return "language must be a string"
    if not s:
        return "language tag is empty"
    if len(s) > _LANGUAGE_MAX:
        return f"language tag is longer than {_LANGUAGE_MAX} characters"
    if not s.isascii() or re.fullmatch(r"[A-Za-z0-9-]+", s) is None:
        return "language tag may only contain ASCII letters, digits and '-'"
    if "" in s.split("-"):
        return "language tag has an empty subtag (leading, trailing or doubled '-')"
    return "not a well-formed BCP-47 language tag (e.g. 'en', 'pt-BR', 'zh-Hant')"


def ensure_valid_language(s: str) -> None:
    if not is_valid_language(s):
        raise InvalidSyntax(_syntax_problem(s))


def _strict_problem(s: str) -> str | None:
    if isinstance(s, str) and _simple_strict_match(s) is not None:
        return None
    if not is_valid_language(s):
        return _syntax_problem(s)
    subtags = s.split("-")
    primary = subtags[0]
    if s.lower() in _GRANDFATHERED or primary in ("x", "X"):
        return None
    if not (len(primary) <= 3 and primary.islower()):
        return "well-formed, but the primary language subtag must be 2-3 lowercase letters"
    # The tag is well-formed, so subtag lengths alone tell the fields apart (RFC 5646 §2.2).
    n, i = len(subtags), 1
    while i < n and i <= 3 and len(subtags[i]) == 3 and subtags[i].isalpha():
        i += 1
    if i < n and len(subtags[i]) == 4 and subtags[i].isalpha():
        i += 1
    if i < n and (
        (len(subtags[i]) == 2 and subtags[i].isalpha()) or (len(subtags[i]) == 3 and subtags[i].isdigit())
    ):
        i += 1
    variants: set[str] = set()
    while i < n and (len(subtags[i]) >= 5 or (len(subtags[i]) == 4 and subtags[i][0].isdigit())):
        key = subtags[i].lower()
        if key in variants:
            return f"well-formed, but variant subtag '{key}' is repeated"
        variants.add(key)
        i += 1
    singletons: set[str] = set()
    while i < n and len(subtags[i]) == 1 and subtags[i] not in ("x", "X"):
        key = subtags[i].lower()
        if key in singletons:
            return f"well-formed, but extension singleton '{key}' is repeated"
        singletons.add(key)
        i += 1
        while i < n and len(subtags[i]) > 1:
            i += 1
    return None


def ensure_valid_language_strict(s: str) -> None:
    problem = _strict_problem(s)
    if problem is not None:
        raise InvalidSyntax(problem)


def is_valid_language_strict(s: str) -> bool:
    return _strict_problem(s) is None
