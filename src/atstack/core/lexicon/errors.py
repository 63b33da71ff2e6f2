"""Errors raised by lexicon loading and data validation.

Spec: atproto.com/specs/lexicon. Two failure kinds are kept apart because callers treat them differently: a
broken schema (:class:`LexiconError`) is an operator/configuration problem, data that does not match a sound
schema (:class:`ValidationError`) is the client's fault (XRPC ``InvalidRequest``).
"""

from __future__ import annotations

__all__ = ["Invalid", "LexiconError", "ValidationError"]


class LexiconError(ValueError):
    """A lexicon document (or a reference between documents) is invalid or missing."""


class ValidationError(ValueError):
    """Data does not match its lexicon. ``str()`` gives ``"<path> <reason>"``, e.g. ``Record/text must be a
    string``; ``path`` and ``reason`` are also available separately."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


class Invalid(Exception):
    """Raised inside compiled validators. The path is collected on the way out (innermost key first), so
    building it costs nothing while data is valid."""

    __slots__ = ("reason", "segments")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.segments: list[str] = []

    def to_error(self, root: str) -> ValidationError:
        path = "/".join([root, *reversed(self.segments)])
        return ValidationError(path, self.reason)
