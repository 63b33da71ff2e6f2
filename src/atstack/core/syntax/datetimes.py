"""The Lexicon ``datetime`` string format: syntax check, strict semantic check and parse.

Spec: atproto.com/specs/lexicon ("datetime"), checklist §1. The accepted shape is the intersection of RFC 3339,
ISO 8601 and WHATWG: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` with uppercase ``T``/``Z``, seconds required,
any number of fraction digits, a timezone required and ``-00:00`` forbidden.

Two levels, matching the interop vectors: the *syntax* check is shape only (two digits per field, so
``1985-13-12T…`` passes it), the *strict* check also rejects impossible field values and instants before
``0000-01-01T00:00:00Z`` once the offset is applied. Records should be validated strictly. Keep datetimes as the
original strings when round-tripping: re-formatting changes record CIDs.
"""

from __future__ import annotations

import datetime as _dt
import re

from atstack.core.syntax.errors import InvalidSyntax

__all__ = [
    "DATETIME_MAX",
    "ensure_valid_datetime",
    "ensure_valid_datetime_strict",
    "is_valid_datetime",
    "is_valid_datetime_strict",
    "parse_datetime",
]

# The reference implementation caps the string at 64 characters; longer values would not interoperate.
DATETIME_MAX = 64

_datetime_match = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def is_valid_datetime(s: str) -> bool:
    return (
        isinstance(s, str)
        and len(s) <= DATETIME_MAX
        and _datetime_match(s) is not None
        and not s.endswith("-00:00")
    )


def _syntax_problem(s: object) -> str:
    if not isinstance(s, str):
        return "datetime must be a string"
    if len(s) > DATETIME_MAX:
        return f"datetime is longer than {DATETIME_MAX} characters"
    if s.endswith("-00:00"):
        return "datetime must not use '-00:00' as a timezone (use 'Z' or '+00:00')"
    if s != s.strip():
        return "datetime has leading or trailing whitespace"
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?", s):
        return "datetime needs a timezone: 'Z' or '±HH:MM'"
    return "datetime must look like YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"


def ensure_valid_datetime(s: str) -> None:
    """Syntax (shape) check only; see ``ensure_valid_datetime_strict`` for field ranges."""
    if not is_valid_datetime(s):
        raise InvalidSyntax(_syntax_problem(s))


# Field ranges folded into one pattern for the fast path; the calendar (30-day months, February) and the year
# 0000 offset rule are checked after it. Leap second 60 is refused like the reference implementation (and Python).
_strict_match = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]+)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
).fullmatch
# Two-digit fields compare correctly as strings.
_LAST_DAY = {f"{m:02d}": f"{_DAYS_IN_MONTH[m]:02d}" for m in range(1, 13)}


def _strict_problem(s: object) -> str | None:
    """None when ``s`` is a strictly valid datetime, else the reason."""
    if not isinstance(s, str) or len(s) > DATETIME_MAX or s.endswith("-00:00"):
        return _syntax_problem(s)
    if _strict_match(s) is None:
        return _range_problem(s)
    day = s[8:10]
    if day >= "29" and day > _LAST_DAY[s[5:7]] and not (day == "29" and _is_leap(int(s[:4]))):
        return "datetime day is out of range for that month"
    if s[-6] == "+" and s.startswith("0000-"):
        # Only year 0000 can fall before 0000-01-01T00:00Z once the offset is taken away; a fraction does not
        # change the outcome because the comparison is between whole seconds.
        m = int(s[5:7])
        day_of_year = _DAYS_BEFORE_MONTH[m] + (1 if m > 2 else 0) + int(day) - 1
        local_seconds = ((day_of_year * 24 + int(s[11:13])) * 60 + int(s[14:16])) * 60 + int(s[17:19])
        if local_seconds < (int(s[-5:-3]) * 60 + int(s[-2:])) * 60:
            return "datetime normalises to before year 0000 (negative) in UTC"
    return None


def _range_problem(s: str) -> str:
    if _datetime_match(s) is None:
        return _syntax_problem(s)
    if not "01" <= s[5:7] <= "12":
        return "datetime month must be 01-12"
    if not "01" <= s[8:10] <= "31":
        return "datetime day is out of range for that month"
    if s[11:13] > "23":
        return "datetime hour must be 00-23"
    if s[14:16] > "59":
        return "datetime minute must be 00-59"
    if s[17:19] > "59":
        return "datetime second must be 00-59"
    return "datetime timezone offset must be within ±23:59"


def ensure_valid_datetime_strict(s: str) -> None:
    """Syntax plus semantics: real calendar date, hour/minute/second in range, not negative in UTC."""
    problem = _strict_problem(s)
    if problem is not None:
        raise InvalidSyntax(problem)


def is_valid_datetime_strict(s: str) -> bool:
    return _strict_problem(s) is None


_UTC = _dt.UTC
_offset_cache: dict[int, _dt.tzinfo] = {0: _UTC}


def parse_datetime(s: str) -> _dt.datetime:
    """Strictly validate and parse to an aware ``datetime`` in the string's own offset.

    Fractions beyond microseconds are truncated. Year 0000 passes ``ensure_valid_datetime_strict`` but has no
    ``datetime.datetime`` representation, so it raises ``InvalidSyntax`` here (with that reason).
    """
    ensure_valid_datetime_strict(s)
    year = int(s[0:4])
    if year < _dt.MINYEAR:
        raise InvalidSyntax("datetime in year 0000 is valid but cannot be represented as datetime.datetime")
    zulu = s[-1] == "Z"
    # Fields sit at fixed offsets: the fraction (if any) runs from index 20 up to the timezone.
    micro = int(s[20 : len(s) - (1 if zulu else 6)][:6].ljust(6, "0")) if s[19] == "." else 0
    offset = 0 if zulu else (int(s[-5:-3]) * 60 + int(s[-2:])) * (-1 if s[-6] == "-" else 1)
    tz = _offset_cache.get(offset)
    if tz is None:
        tz = _offset_cache.setdefault(offset, _dt.timezone(_dt.timedelta(minutes=offset)))
    return _dt.datetime(
        year, int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19]), micro, tzinfo=tz
    )
