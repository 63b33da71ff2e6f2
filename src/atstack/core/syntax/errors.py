"""The one exception type of the syntax layer."""

from __future__ import annotations

__all__ = ["InvalidSyntax"]


class InvalidSyntax(ValueError):
    """A string is not a well-formed identifier of the requested kind; the message says why in one line."""
