"""DID documents: extracting the atproto identity from one, and rendering the standard form.

Spec: atproto.com/specs/did ("DID Documents", "Representation of Public Keys", "Legacy Representation");
rendering follows the did:plc spec ("Presentation as DID Document") as plc.directory serves it.

Extraction rules (each picks the *first* qualifying entry and ignores the rest):

* ``id`` must equal the DID that was resolved, else the whole document is refused.
* handle: first ``alsoKnownAs`` entry ``at://<handle>`` whose remainder is a syntactically valid handle
  (lower-cased). Nothing else may follow the handle.
* signing key: first ``verificationMethod`` with id ``#atproto`` (bare or DID-qualified), ``controller`` = DID
  and a parseable key: ``Multikey`` or one of the legacy ``EcdsaSecp256{k1,r1}VerificationKey2019`` types
  (converted to multikey).
* PDS: first ``service`` with id ``#atproto_pds`` (bare or DID-qualified) and type
  ``AtprotoPersonalDataServer``; its ``serviceEndpoint`` must be an http(s) URL of scheme, host and optional
  port only, otherwise the account has no usable PDS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from atstack.core.crypto import DID_KEY_PREFIX, InvalidKey, parse_did_key, parse_legacy_key, parse_multikey
from atstack.core.syntax import is_valid_handle

__all__ = [
    "ATPROTO_PDS_TYPE",
    "AtprotoIdentity",
    "InvalidDidDocument",
    "build_did_doc",
    "is_valid_pds_endpoint",
    "parse_did_doc",
    "render_did_doc",
]

ATPROTO_PDS_TYPE = "AtprotoPersonalDataServer"
CONTEXT_DID = "https://www.w3.org/ns/did/v1"
CONTEXT_MULTIKEY = "https://w3id.org/security/multikey/v1"
# plc.directory adds the suite context of each key's curve
CONTEXT_BY_CURVE = {
    "k256": "https://w3id.org/security/suites/secp256k1-2019/v1",
    "p256": "https://w3id.org/security/suites/ecdsa-2019/v1",
}


class InvalidDidDocument(ValueError):
    """The document is not a JSON object or does not describe the DID that was resolved."""


@dataclass(frozen=True, slots=True)
class AtprotoIdentity:
    did: str
    handle: str | None
    signing_key: str | None  # multikey ('z…')
    pds_endpoint: str | None


def _matches_fragment(entry_id: object, did: str, fragment: str) -> bool:
    return entry_id == fragment or entry_id == did + fragment


def is_valid_pds_endpoint(url: object) -> bool:
    """An http(s) URL of scheme + host + optional port, with no userinfo, path, query or fragment."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if "@" in parts.netloc or parts.netloc.endswith(":") or parts.path or parts.query or parts.fragment:
        return False
    if url.endswith(("?", "#")):  # urlsplit drops an empty query or fragment
        return False
    return port is None or port > 0


def _handle_from(aka: object) -> str | None:
    if not isinstance(aka, list):
        return None
    for entry in aka:
        if isinstance(entry, str) and entry.startswith("at://"):
            candidate = entry[5:]
            if is_valid_handle(candidate):
                return candidate.lower()
    return None


def _signing_key_from(methods: object, did: str) -> str | None:
    if not isinstance(methods, list):
        return None
    for vm in methods:
        if not isinstance(vm, dict) or not _matches_fragment(vm.get("id"), did, "#atproto"):
            continue
        if vm.get("controller") != did:
            continue
        key_type, encoded = vm.get("type"), vm.get("publicKeyMultibase")
        if not isinstance(key_type, str) or not isinstance(encoded, str):
            continue
        try:
            if key_type == "Multikey":
                return parse_multikey(encoded).multikey()
            return parse_legacy_key(key_type, encoded).multikey()
        except InvalidKey:
            continue
    return None


def _pds_from(services: object, did: str) -> str | None:
    if not isinstance(services, list):
        return None
    for svc in services:
        if (
            isinstance(svc, dict)
            and _matches_fragment(svc.get("id"), did, "#atproto_pds")
            and svc.get("type") == ATPROTO_PDS_TYPE
        ):
            endpoint = svc.get("serviceEndpoint")
            return endpoint if is_valid_pds_endpoint(endpoint) else None
    return None


def parse_did_doc(doc: Mapping[str, Any], expected_did: str) -> AtprotoIdentity:
    """Extract handle, signing key and PDS from a resolved DID document (rules in the module docstring).

    Raises :class:`InvalidDidDocument` if ``doc`` is not an object or its ``id`` is not ``expected_did``;
    missing or malformed parts otherwise come back as ``None``.
    """
    if not isinstance(doc, Mapping):
        raise InvalidDidDocument("DID document must be a JSON object")
    if doc.get("id") != expected_did:
        raise InvalidDidDocument(f"DID document id {doc.get('id')!r} does not match {expected_did!r}")
    return AtprotoIdentity(
        did=expected_did,
        handle=_handle_from(doc.get("alsoKnownAs")),
        signing_key=_signing_key_from(doc.get("verificationMethod"), expected_did),
        pds_endpoint=_pds_from(doc.get("service"), expected_did),
    )


def render_did_doc(
    did: str,
    also_known_as: Sequence[str],
    verification_methods: Mapping[str, str],
    services: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """The DID document for did:plc-style data: ``verification_methods`` maps names to ``did:key`` strings,
    ``services`` maps names to ``{"type", "endpoint"}``. Keys of unknown type are still rendered as Multikey.
    """
    context = [CONTEXT_DID, CONTEXT_MULTIKEY]
    methods = []
    for name, did_key in verification_methods.items():
        try:
            suite = CONTEXT_BY_CURVE[parse_did_key(did_key).curve]
        except InvalidKey:
            suite = None  # did:plc allows any did:key here; there is no suite context we could name
        if suite is not None and suite not in context:
            context.append(suite)
        methods.append(
            {
                "id": f"{did}#{name}",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": did_key.removeprefix(DID_KEY_PREFIX),
            }
        )
    service = [
        {"id": f"#{name}", "type": svc["type"], "serviceEndpoint": svc["endpoint"]}
        for name, svc in services.items()
    ]
    return {
        "@context": context,
        "id": did,
        "alsoKnownAs": list(also_known_as),
        "verificationMethod": methods,
        "service": service,
    }


def build_did_doc(
    did: str, handle: str | None, signing_key_multikey: str | None, pds_endpoint: str | None
) -> dict[str, Any]:
    """The standard atproto DID document (as plc.directory serves it) for one account."""
    return render_did_doc(
        did,
        [f"at://{handle}"] if handle else [],
        {"atproto": DID_KEY_PREFIX + signing_key_multikey} if signing_key_multikey else {},
        {"atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": pds_endpoint}} if pds_endpoint else {},
    )
