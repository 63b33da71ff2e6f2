"""Identity client: DID and handle resolution over the wire, as the PDS and relay use it.

Spec: atproto.com/specs/did, atproto.com/specs/handle, the did:plc method specification; checklist §9.

- :mod:`.plc_client` — :class:`PlcClient`: a did:plc directory's HTTP API (read, submit, export);
- :mod:`.did_resolver` — :class:`DidResolver`: did:plc and did:web → document → ``AtprotoIdentity``;
- :mod:`.handle_resolver` — :class:`HandleResolver`: DNS TXT ``_atproto`` and ``/.well-known/atproto-did``;
- :mod:`.resolver` — :class:`IdentityResolver`: bidirectional confirmation of handle and DID;
- :mod:`.net` — the SSRF guard for user-controlled hosts; :mod:`.cache` — TTL cache with coalescing.

``allow_private=True`` is the development/test mode (loopback hosts, http for localhost, ``.test``).
"""

from atstack.core.did_doc import AtprotoIdentity
from atstack.identity.did_resolver import DidResolver, ResolvedDid, did_web_url
from atstack.identity.errors import (
    DidNotFound,
    DidResolutionError,
    HandleResolutionError,
    IdentityError,
    IdentityMismatch,
    InvalidHandle,
    PlcError,
    UnsafeAddress,
)
from atstack.identity.handle_resolver import HandleResolver, did_from_txt_records, did_from_well_known
from atstack.identity.net import guarded_session, is_public_address
from atstack.identity.plc_client import DEFAULT_PLC_URL, PlcClient
from atstack.identity.resolver import IdentityResolver, ResolvedIdentity

__all__ = [
    "DEFAULT_PLC_URL",
    "AtprotoIdentity",
    "DidNotFound",
    "DidResolutionError",
    "DidResolver",
    "HandleResolutionError",
    "HandleResolver",
    "IdentityError",
    "IdentityMismatch",
    "IdentityResolver",
    "InvalidHandle",
    "PlcClient",
    "PlcError",
    "ResolvedDid",
    "ResolvedIdentity",
    "UnsafeAddress",
    "did_from_txt_records",
    "did_from_well_known",
    "did_web_url",
    "guarded_session",
    "is_public_address",
]
