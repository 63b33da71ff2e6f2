"""Handles, DIDs, NSIDs (and NSID globs), TIDs, record keys and at-identifiers.

Specs: atproto.com/specs/handle, /did, /nsid, /tid, /record-key (checklist §1). Every ``is_valid_*`` is one
length check plus one precompiled ``fullmatch``: they run on every record write and every firehose event. The
matching ``ensure_valid_*`` only works out a human reason after the fast check has failed.

All patterns spell out ASCII classes (never ``\\d``/``\\w``, which match non-ASCII digits and letters) and use
``fullmatch`` (``$`` would accept a trailing newline).
"""

from __future__ import annotations

import re

from atstack.core.syntax.errors import InvalidSyntax

__all__ = [
    "DISALLOWED_TLDS",
    "SUPPORTED_DID_METHODS",
    "UnsupportedDidMethod",
    "did_method",
    "ensure_supported_did",
    "ensure_valid_at_identifier",
    "ensure_valid_did",
    "ensure_valid_handle",
    "ensure_valid_nsid",
    "ensure_valid_nsid_glob",
    "ensure_valid_record_key",
    "ensure_valid_tid",
    "is_disallowed_tld",
    "is_supported_did_method",
    "is_valid_at_identifier",
    "is_valid_did",
    "is_valid_did_cached",
    "is_valid_handle",
    "is_valid_nsid",
    "is_valid_nsid_glob",
    "is_valid_record_key",
    "is_valid_tid",
    "normalize_handle",
    "normalize_nsid",
]

HANDLE_MAX = 253
DID_MAX = 2048
NSID_MAX = 317
RECORD_KEY_MAX = 512

# A DNS label: 1-63 chars, no hyphen at either end.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_LABEL_LEADING_LETTER = r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"

# The TLD (last label) may not start with a digit: that is what keeps IPv4 addresses out.
_handle_match = re.compile(rf"(?:{_LABEL}\.)+{_LABEL_LEADING_LETTER}").fullmatch
_did_match = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]").fullmatch
_bad_percent = re.compile(r"%(?![0-9A-Fa-f]{2})").search
# Authority = reversed domain (first label starts with a letter); name = letters and digits, letter first.
# Only the total length (317) is enforced: the interop vectors accept a 283-character authority, so the
# spec's 253-character authority bound is not applied separately (the reference implementation agrees).
_nsid_match = re.compile(rf"{_LABEL_LEADING_LETTER}(?:\.{_LABEL})+\.[a-zA-Z][a-zA-Z0-9]{{0,62}}").fullmatch
_nsid_glob_match = re.compile(rf"{_LABEL_LEADING_LETTER}(?:\.{_LABEL})*\.\*").fullmatch
_tid_match = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}").fullmatch
_rkey_match = re.compile(r"[a-zA-Z0-9_~.:-]{1,512}").fullmatch
_label_chars_match = re.compile(r"[a-zA-Z0-9-]+").fullmatch
_did_plc_match = re.compile(r"did:plc:[a-z2-7]{24}").fullmatch
_did_web_host_match = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}").fullmatch

# Syntax-valid, but reserved or special-use: never register or resolve them (handle spec, "Additional
# Non-Syntax Restrictions"). ``.test`` is handled apart because local development uses it.
DISALLOWED_TLDS: frozenset[str] = frozenset(
    {"alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion"}
)
SUPPORTED_DID_METHODS: frozenset[str] = frozenset({"plc", "web"})


class UnsupportedDidMethod(InvalidSyntax):
    """A syntax-valid DID whose method atproto does not support (only ``plc`` and ``web`` are)."""


# ---- handle -------------------------------------------------------------------------------------------------


def is_valid_handle(s: str) -> bool:
    return isinstance(s, str) and len(s) <= HANDLE_MAX and _handle_match(s) is not None


def _handle_problem(s: object) -> str:
    if not isinstance(s, str):
        return "handle must be a string"
    if len(s) > HANDLE_MAX:
        return f"handle is longer than {HANDLE_MAX} characters"
    if not s.isascii():
        return "handle must be ASCII (international names use punycode 'xn--')"
    labels = s.split(".")
    if len(labels) < 2:
        return "handle needs at least two dot-separated labels"
    for label in labels:
        if not label:
            return "handle has an empty label (leading, trailing or doubled '.')"
        if len(label) > 63:
            return "handle label is longer than 63 characters"
        if _label_chars_match(label) is None:
            return "handle label has a character outside [a-zA-Z0-9-]"
        if label[0] == "-" or label[-1] == "-":
            return "handle label must not start or end with '-'"
    if labels[-1][0].isdigit():
        return "last handle label (TLD) must not start with a digit"
    return "not a valid handle"


def ensure_valid_handle(s: str) -> None:
    if not is_valid_handle(s):
        raise InvalidSyntax(_handle_problem(s))


def normalize_handle(s: str) -> str:
    """The canonical (lowercase) form of a valid handle; handles compare case-insensitively."""
    ensure_valid_handle(s)
    return s.lower()


def is_disallowed_tld(handle: str, *, dev: bool = False) -> bool:
    """True when ``handle`` ends in a TLD that must not be registered or resolved.

    ``.test`` is disallowed too unless ``dev`` is set (local networks use ``alice.test``).
    """
    tld = handle.rpartition(".")[2].lower()
    return tld in DISALLOWED_TLDS or (tld == "test" and not dev)


# ---- DID ----------------------------------------------------------------------------------------------------


def is_valid_did(s: str) -> bool:
    return (
        isinstance(s, str)
        and len(s) <= DID_MAX
        and _did_match(s) is not None
        and ("%" not in s or _bad_percent(s) is None)
    )


# DIDs already found valid. Hot paths see the same DIDs again and again (the repos of a firehose), and a set
# lookup is much cheaper than the regex. Bounded in count and in the length of what it keeps, so distinct
# attacker-chosen DIDs cannot grow it without limit.
_valid_dids: set[str] = set()
_VALID_DIDS_MAX = 32768
_VALID_DID_LEN_MAX = 64  # a did:plc is 32 characters


def is_valid_did_cached(s: str) -> bool:
    """:func:`is_valid_did`, remembering the (short) DIDs it found valid."""
    if type(s) is str and s in _valid_dids:
        return True
    if not is_valid_did(s):
        return False
    if type(s) is str and len(s) <= _VALID_DID_LEN_MAX:
        if len(_valid_dids) >= _VALID_DIDS_MAX:
            _valid_dids.clear()
        _valid_dids.add(s)
    return True


def _did_problem(s: object) -> str:
    if not isinstance(s, str):
        return "DID must be a string"
    if len(s) > DID_MAX:
        return f"DID is longer than {DID_MAX} characters"
    if not s.startswith("did:"):
        return "DID must start with 'did:' (lowercase)"
    method, sep, ident = s[4:].partition(":")
    if not sep:
        return "DID needs a method and an identifier: did:<method>:<identifier>"
    if not method or re.fullmatch(r"[a-z]+", method) is None:
        return "DID method must be one or more lowercase letters a-z"
    if not ident:
        return "DID identifier is empty"
    if re.fullmatch(r"[a-zA-Z0-9._:%-]+", ident) is None:
        return "DID identifier has a character outside [a-zA-Z0-9._:%-]"
    if ident[-1] in ":%":
        return "DID must not end with ':' or '%'"
    if _bad_percent(ident):
        return "'%' in a DID must be followed by two hex digits"
    return "not a valid DID"


def ensure_valid_did(s: str) -> None:
    if not is_valid_did(s):
        raise InvalidSyntax(_did_problem(s))


def did_method(did: str) -> str:
    """The method of a syntax-valid DID (``plc`` for ``did:plc:…``)."""
    ensure_valid_did(did)
    return did[4 : did.index(":", 4)]


def is_supported_did_method(did_or_method: str) -> bool:
    """True for ``plc``/``web``; accepts a method name or a whole DID (told apart by the ``did:`` prefix)."""
    if did_or_method.startswith("did:"):
        if not is_valid_did(did_or_method):
            return False
        did_or_method = did_or_method[4 : did_or_method.index(":", 4)]
    return did_or_method in SUPPORTED_DID_METHODS


def ensure_supported_did(did: str, *, dev: bool = False) -> None:
    """A DID atproto can use: ``did:plc`` (24 base32 chars) or ``did:web`` naming a bare hostname.

    Raises ``UnsupportedDidMethod`` for other (syntax-valid) methods. A ``did:web`` port (``%3A``) is only
    accepted for ``localhost`` and only with ``dev``.
    """
    method = did_method(did)
    if method == "plc":
        if _did_plc_match(did) is None:
            raise InvalidSyntax("did:plc identifier must be 24 characters of lowercase base32 [a-z2-7]")
    elif method == "web":
        host = did[8:]
        if ":" in host:
            raise InvalidSyntax("did:web with a path is not supported in atproto (hostname only)")
        name, pct, port = host.replace("%3a", "%3A").partition("%3A")
        if pct:
            if not (dev and name == "localhost" and port.isdigit() and port.isascii()):
                raise InvalidSyntax("did:web may only carry a port for localhost in development")
        elif "%" in host or _did_web_host_match(host) is None:
            raise InvalidSyntax("did:web identifier must be a hostname")
    else:
        raise UnsupportedDidMethod(f"DID method '{method}' is not supported (only plc and web)")


# ---- NSID ---------------------------------------------------------------------------------------------------


def is_valid_nsid(s: str) -> bool:
    return isinstance(s, str) and len(s) <= NSID_MAX and _nsid_match(s) is not None


def _nsid_problem(s: object) -> str:
    if not isinstance(s, str):
        return "NSID must be a string"
    if len(s) > NSID_MAX:
        return f"NSID is longer than {NSID_MAX} characters"
    if not s.isascii():
        return "NSID must be ASCII"
    segments = s.split(".")
    if len(segments) < 3:
        return "NSID needs at least three dot-separated segments"
    for seg in segments:
        if not seg:
            return "NSID has an empty segment (leading, trailing or doubled '.')"
        if len(seg) > 63:
            return "NSID segment is longer than 63 characters"
    for seg in segments[:-1]:
        if _label_chars_match(seg) is None:
            return "NSID domain segment has a character outside [a-zA-Z0-9-]"
        if seg[0] == "-" or seg[-1] == "-":
            return "NSID domain segment must not start or end with '-'"
    if segments[0][0].isdigit():
        return "first NSID segment must not start with a digit"
    name = segments[-1]
    if re.fullmatch(r"[a-zA-Z0-9]+", name) is None:
        return "NSID name (last segment) may only contain letters and digits"
    if name[0].isdigit():
        return "NSID name (last segment) must not start with a digit"
    return "not a valid NSID"


def ensure_valid_nsid(s: str) -> None:
    if not is_valid_nsid(s):
        raise InvalidSyntax(_nsid_problem(s))


def normalize_nsid(s: str) -> str:
    """Lowercase the domain authority of a valid NSID; the name segment is case-sensitive and kept."""
    ensure_valid_nsid(s)
    authority, _, name = s.rpartition(".")
    return f"{authority.lower()}.{name}"


def is_valid_nsid_glob(s: str) -> bool:
    """An NSID pattern as Jetstream filters and permissions use it.

    Accepted: bare ``*``; a prefix of domain segments followed by ``.*`` at a segment boundary
    (``app.bsky.*``, ``app.bsky.feed.*``); or a full NSID, which matches only itself.
    """
    if not isinstance(s, str):
        return False
    if s == "*":
        return True
    if s.endswith(".*"):
        return len(s) <= NSID_MAX and _nsid_glob_match(s) is not None
    return is_valid_nsid(s)


def ensure_valid_nsid_glob(s: str) -> None:
    if is_valid_nsid_glob(s):
        return
    if not isinstance(s, str):
        raise InvalidSyntax("NSID glob must be a string")
    if "*" in s and not s.endswith(".*"):
        raise InvalidSyntax("NSID glob wildcard must be a bare '*' or a trailing '.*' after a whole segment")
    if s.endswith(".*"):
        prefix = s[:-2]
        if "*" in prefix:
            raise InvalidSyntax("NSID glob may only have one trailing wildcard")
        segments = prefix.split(".")
        if len(s) > NSID_MAX:
            raise InvalidSyntax(f"NSID glob is longer than {NSID_MAX} characters")
        for seg in segments:
            if not seg:
                raise InvalidSyntax("NSID glob has an empty segment (leading, trailing or doubled '.')")
            if len(seg) > 63 or _label_chars_match(seg) is None or seg[0] == "-" or seg[-1] == "-":
                raise InvalidSyntax(
                    "NSID glob prefix segments must be DNS labels: 1-63 of [a-zA-Z0-9-], no edge '-'"
                )
        if not segments[0][0].isalpha():
            raise InvalidSyntax("first NSID glob segment must start with a letter")
        raise InvalidSyntax("not a valid NSID glob")
    raise InvalidSyntax(_nsid_problem(s))


# ---- TID ----------------------------------------------------------------------------------------------------


def is_valid_tid(s: str) -> bool:
    return isinstance(s, str) and len(s) == 13 and _tid_match(s) is not None


def _tid_problem(s: object) -> str:
    if not isinstance(s, str):
        return "TID must be a string"
    if len(s) != 13:
        return f"TID must be exactly 13 characters, got {len(s)}"
    if re.fullmatch(r"[234567a-z]{13}", s) is None:
        return "TID may only use the base32-sortable alphabet 234567abcdefghijklmnopqrstuvwxyz (lowercase)"
    return "TID first character must be one of 234567abcdefghij (the top bit is always 0)"


def ensure_valid_tid(s: str) -> None:
    if not is_valid_tid(s):
        raise InvalidSyntax(_tid_problem(s))


# ---- record key ---------------------------------------------------------------------------------------------


def is_valid_record_key(s: str) -> bool:
    return isinstance(s, str) and _rkey_match(s) is not None and s != "." and s != ".."


def _record_key_problem(s: object) -> str:
    if not isinstance(s, str):
        return "record key must be a string"
    if not s:
        return "record key is empty"
    if len(s) > RECORD_KEY_MAX:
        return f"record key is longer than {RECORD_KEY_MAX} characters"
    if s in (".", ".."):
        return "record key must not be '.' or '..'"
    return "record key has a character outside [a-zA-Z0-9_~.:-]"


def ensure_valid_record_key(s: str) -> None:
    if not is_valid_record_key(s):
        raise InvalidSyntax(_record_key_problem(s))


# ---- at-identifier ------------------------------------------------------------------------------------------


def is_valid_at_identifier(s: str) -> bool:
    """A handle or a DID (unambiguous: handles cannot contain ':')."""
    if not isinstance(s, str):
        return False
    return is_valid_did(s) if s.startswith("did:") else is_valid_handle(s)


def ensure_valid_at_identifier(s: str) -> None:
    if is_valid_at_identifier(s):
        return
    if isinstance(s, str) and s.startswith("did:"):
        raise InvalidSyntax(_did_problem(s))
    if isinstance(s, str) and ":" in s:
        raise InvalidSyntax("at-identifier must be a handle or a DID starting with 'did:'")
    raise InvalidSyntax(_handle_problem(s))
