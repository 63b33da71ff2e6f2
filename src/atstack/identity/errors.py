"""Errors raised by the identity client (``atstack.identity``)."""

from __future__ import annotations

__all__ = [
    "DidNotFound",
    "DidResolutionError",
    "HandleResolutionError",
    "IdentityError",
    "IdentityMismatch",
    "InvalidHandle",
    "PlcError",
    "UnsafeAddress",
]


class IdentityError(Exception):
    """Base class of every identity lookup failure."""


class PlcError(IdentityError):
    """A PLC directory answered with an error, or could not be reached (``status`` None).

    ``message`` is the directory's ``{"message"}`` text when it sent one.
    """

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"PLC directory error {status}: {message}" if status else message)
        self.status = status
        self.message = message


class DidNotFound(IdentityError):
    """The DID does not exist; ``deactivated`` when it did but was tombstoned (HTTP 410)."""

    def __init__(self, did: str, *, deactivated: bool = False) -> None:
        super().__init__(f"DID {'deactivated' if deactivated else 'not found'}: {did}")
        self.did = did
        self.deactivated = deactivated


class DidResolutionError(IdentityError):
    """The DID could not be resolved: unsupported method, network failure, or an unusable document."""


class InvalidHandle(IdentityError, ValueError):
    """The string is not a handle that may be resolved (syntax, or a reserved TLD)."""


class HandleResolutionError(IdentityError):
    """The handle did not resolve to a DID (no record, conflicting records, or lookups failed)."""


class IdentityMismatch(IdentityError):
    """Handle and DID do not confirm each other (the DID document does not claim the handle)."""


class UnsafeAddress(IdentityError):
    """A URL would reach a loopback, private or otherwise non-public address (SSRF guard)."""
