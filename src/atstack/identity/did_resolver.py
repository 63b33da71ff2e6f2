"""DID → DID document → atproto identity (handle claim, signing key, PDS), with a cache.

Spec: atproto.com/specs/did ("DID Methods", "DID Documents"), checklist §9:

* ``did:plc``: ``GET <plc directory>/<did>``; 404 = not found, 410 = tombstoned (both :class:`DidNotFound`).
* ``did:web``: ``GET https://<host>/.well-known/did.json`` — hostname only, no path. ``http`` and a port
  (``did:web:localhost%3A2583``) only for ``localhost`` and only with ``allow_private`` (development).
  The host is user-controlled, so the fetch goes through the SSRF guard of :mod:`.net`.
* The document's ``id`` must equal the DID; :func:`atstack.core.did_doc.parse_did_doc` extracts the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson

from atstack.core.did_doc import AtprotoIdentity, InvalidDidDocument, parse_did_doc
from atstack.core.syntax import InvalidSyntax, ensure_supported_did
from atstack.identity.cache import TTLCache
from atstack.identity.errors import DidNotFound, DidResolutionError, PlcError, UnsafeAddress
from atstack.identity.net import fetch_bounded, guarded_session
from atstack.identity.plc_client import DEFAULT_PLC_URL, PlcClient

__all__ = ["DidResolver", "ResolvedDid", "did_web_url"]

MAX_DOC_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ResolvedDid:
    """A resolved DID: the raw document and what atproto reads from it."""

    doc: dict[str, Any]
    identity: AtprotoIdentity


def did_web_url(did: str, *, allow_private: bool) -> str:
    """The ``did.json`` URL of a ``did:web`` (checks the atproto restrictions first)."""
    try:
        ensure_supported_did(did, dev=allow_private)
    except InvalidSyntax as exc:
        raise DidResolutionError(f"cannot resolve {did}: {exc}") from None
    host = unquote(did[len("did:web:") :]).lower()
    scheme = "http" if allow_private and host.split(":", 1)[0] == "localhost" else "https"
    return f"{scheme}://{host}/.well-known/did.json"


class DidResolver:
    """Resolves ``did:plc`` through one directory and ``did:web`` over HTTPS; caches for ``ttl`` seconds.

    ``session`` is used for the directory (owned by the caller); did:web fetches use a session of our own
    with the SSRF guard (unless ``allow_private``). Close with :meth:`close` or ``async with``.
    """

    def __init__(
        self,
        plc_url: str = DEFAULT_PLC_URL,
        *,
        session: aiohttp.ClientSession | None = None,
        allow_private: bool = False,
        timeout: float = 5.0,
        ttl: float = 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plc_url = plc_url
        self.allow_private = allow_private
        self.timeout = timeout
        self._own_session = session is None
        self._session = session
        self._web_session: aiohttp.ClientSession | None = None
        self._plc: PlcClient | None = None
        self._cache: TTLCache[str, ResolvedDid] = TTLCache(ttl, max_entries, clock=clock)

    async def __aenter__(self) -> DidResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._web_session is not None:
            await self._web_session.close()
            self._web_session = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def plc(self) -> PlcClient:
        """The :class:`PlcClient` used for did:plc (also handy for log reads and submissions)."""
        if self._plc is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            self._plc = PlcClient(self.plc_url, self._session, timeout=self.timeout)
        return self._plc

    # resolution ---------------------------------------------------------------------------------

    async def resolve(self, did: str, *, refresh: bool = False) -> AtprotoIdentity:
        """Handle claim, signing key and PDS of ``did`` (the handle is *not* verified here)."""
        return (await self.resolve_full(did, refresh=refresh)).identity

    async def resolve_doc(self, did: str, *, refresh: bool = False) -> dict[str, Any]:
        """The DID document as the DID method serves it."""
        return (await self.resolve_full(did, refresh=refresh)).doc

    async def refresh(self, did: str) -> AtprotoIdentity:
        """Re-resolve ``did`` now (on an ``#identity`` event), replacing the cached entry."""
        return await self.resolve(did, refresh=True)

    def invalidate(self, did: str) -> None:
        """Drop ``did`` from the cache; the next lookup goes to the network."""
        self._cache.pop(did)

    async def resolve_full(self, did: str, *, refresh: bool = False) -> ResolvedDid:
        """Document and identity, from the cache unless expired or ``refresh``."""
        return await self._cache.get_or_load(did, lambda: self._fetch(did), refresh=refresh)

    async def _fetch(self, did: str) -> ResolvedDid:
        if did.startswith("did:plc:"):
            doc = await self._fetch_plc(did)
        elif did.startswith("did:web:"):
            doc = await self._fetch_web(did)
        else:
            raise DidResolutionError(f"unsupported DID method: {did[:40]!r}")
        try:
            identity = parse_did_doc(doc, did)
        except InvalidDidDocument as exc:
            raise DidResolutionError(f"bad DID document for {did}: {exc}") from None
        return ResolvedDid(doc, identity)

    async def _fetch_plc(self, did: str) -> dict[str, Any]:
        try:
            ensure_supported_did(did)
        except InvalidSyntax as exc:
            raise DidResolutionError(f"cannot resolve {did[:60]!r}: {exc}") from None
        try:
            return await self.plc.get_document(did)
        except PlcError as exc:
            if exc.status in (404, 410):
                raise DidNotFound(did, deactivated=exc.status == 410) from None
            raise DidResolutionError(f"resolving {did}: {exc}") from exc

    async def _fetch_web(self, did: str) -> dict[str, Any]:
        url = did_web_url(did, allow_private=self.allow_private)
        if self._web_session is None:
            self._web_session = guarded_session(allow_private=self.allow_private)
        try:
            status, body = await fetch_bounded(
                self._web_session,
                url,
                allow_private=self.allow_private,
                allow_http=url.startswith("http:"),
                timeout=self.timeout,
                max_bytes=MAX_DOC_BYTES,
                headers={"Accept": "application/did+ld+json, application/json"},
            )
        except UnsafeAddress as exc:
            raise DidResolutionError(f"resolving {did}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DidResolutionError(f"resolving {did}: {type(exc).__name__}: {exc}") from exc
        if status in (404, 410):
            raise DidNotFound(did, deactivated=status == 410)
        if not 200 <= status < 300:
            raise DidResolutionError(f"resolving {did}: {url} answered {status}")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DidResolutionError(f"resolving {did}: invalid JSON ({exc.msg})") from None
        if not isinstance(doc, dict):
            raise DidResolutionError(f"resolving {did}: document is not a JSON object")
        return doc
