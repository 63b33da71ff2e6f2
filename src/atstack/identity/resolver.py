"""Bidirectional identity resolution: a handle or DID → a confirmed (DID, handle) pair with key and PDS.

Spec: atproto.com/specs/handle ("Handle Resolution"; "the DID document must claim the handle") and
checklist §9 "Always confirm bidirectionally". A handle is only trusted when it resolves to the DID *and*
that DID's document lists ``at://<handle>`` first among its handle aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atstack.identity.did_resolver import DidResolver
from atstack.identity.errors import (
    HandleResolutionError,
    IdentityError,
    IdentityMismatch,
    InvalidHandle,
)
from atstack.identity.handle_resolver import HandleResolver

__all__ = ["IdentityResolver", "ResolvedIdentity"]


@dataclass(frozen=True, slots=True)
class ResolvedIdentity:
    """``handle`` is set only when confirmed both ways; ``claimed_handle`` is what the document says."""

    did: str
    handle: str | None
    claimed_handle: str | None
    signing_key: str | None  # multikey
    pds_endpoint: str | None
    doc: dict[str, Any]


class IdentityResolver:
    """Combines a :class:`DidResolver` and a :class:`HandleResolver` (both owned by the caller)."""

    def __init__(self, dids: DidResolver, handles: HandleResolver) -> None:
        self.dids = dids
        self.handles = handles

    async def resolve_identity(self, handle_or_did: str, *, refresh: bool = False) -> ResolvedIdentity:
        """Resolve a DID or a handle and confirm the handle against the DID document.

        For a DID: resolution errors propagate; an unconfirmed handle claim gives ``handle=None``.
        For a handle: raises :class:`HandleResolutionError` if it names no DID and
        :class:`IdentityMismatch` if the DID document does not claim it back.
        """
        if handle_or_did.startswith("did:"):
            return await self._from_did(handle_or_did, refresh)
        return await self._from_handle(handle_or_did, refresh)

    async def _from_did(self, did: str, refresh: bool) -> ResolvedIdentity:
        resolved = await self.dids.resolve_full(did, refresh=refresh)
        claimed = resolved.identity.handle
        confirmed: str | None = None
        if claimed is not None:
            try:
                back = await self.handles.resolve(claimed, refresh=refresh)
            except (InvalidHandle, IdentityError):
                back = None
            confirmed = claimed if back == did else None
        ident = resolved.identity
        return ResolvedIdentity(did, confirmed, claimed, ident.signing_key, ident.pds_endpoint, resolved.doc)

    async def _from_handle(self, handle: str, refresh: bool) -> ResolvedIdentity:
        did = await self.handles.resolve(handle, refresh=refresh)
        if did is None:
            raise HandleResolutionError(f"handle {handle!r} does not resolve to a DID")
        resolved = await self.dids.resolve_full(did, refresh=refresh)
        ident = resolved.identity
        if ident.handle != handle.lower():
            raise IdentityMismatch(
                f"handle {handle!r} resolves to {did}, whose document claims {ident.handle!r}"
            )
        return ResolvedIdentity(
            did, ident.handle, ident.handle, ident.signing_key, ident.pds_endpoint, resolved.doc
        )
