"""Handle → DID, by DNS TXT and by HTTPS ``/.well-known/atproto-did``, with a cache.

Spec: atproto.com/specs/handle ("Handle Resolution"), checklist §9:

* DNS: TXT records of ``_atproto.<handle>``; records starting ``did=`` carry the DID, other TXT records are
  ignored. More than one distinct DID among them is a misconfiguration: DNS then gives no answer.
* HTTPS: ``GET https://<handle>/.well-known/atproto-did`` → 2xx, body is the DID (first line, whitespace
  trimmed); redirects are followed (each hop through the SSRF guard).
* Both run in parallel; a DNS answer wins (the HTTPS lookup is then cancelled), otherwise the HTTPS one
  is used. The result is a DID claim only: callers confirm it against the DID document (see
  :class:`atstack.identity.IdentityResolver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

import aiohttp

from atstack.core.syntax import (
    InvalidSyntax,
    is_disallowed_tld,
    is_supported_did_method,
    is_valid_did,
    normalize_handle,
)
from atstack.identity.cache import TTLCache
from atstack.identity.errors import InvalidHandle, UnsafeAddress
from atstack.identity.net import fetch_bounded, guarded_session

__all__ = ["HandleResolver", "did_from_txt_records", "did_from_well_known", "normalize_resolvable_handle"]

log = logging.getLogger("atstack.identity")

TXT_PREFIX = "did="
MAX_WELL_KNOWN_BYTES = 2048
_NOT_FOUND = ""  # cached "no DID" (distinct from "not cached", which is None)


def _is_usable_did(value: str) -> bool:
    return is_valid_did(value) and is_supported_did_method(value)


def did_from_txt_records(records: Iterable[str | bytes | Sequence[bytes]]) -> str | None:
    """The DID named by a handle's ``_atproto`` TXT records, or None (none, conflicting, or malformed).

    A record may be given as a string, as bytes, or as the tuple of character-strings DNS splits long TXT
    records into (joined without separator).
    """
    found: set[str] = set()
    for record in records:
        if isinstance(record, bytes):
            text = record.decode("utf-8", "replace")
        elif isinstance(record, str):
            text = record
        else:
            text = b"".join(record).decode("utf-8", "replace")
        if text.startswith(TXT_PREFIX):
            found.add(text[len(TXT_PREFIX) :].strip())
    if len(found) != 1:
        return None
    did = found.pop()
    return did if _is_usable_did(did) else None


def did_from_well_known(body: bytes) -> str | None:
    """The DID in an ``/.well-known/atproto-did`` body (first line, trimmed), or None if it is not one."""
    text = body.decode("utf-8", "replace").strip()
    first = text.split("\n", 1)[0].strip()
    return first if _is_usable_did(first) else None


def normalize_resolvable_handle(handle: str, *, allow_test: bool) -> str:
    """Lower-cased ``handle``; raises :class:`InvalidHandle` for bad syntax or a reserved TLD."""
    try:
        normalized = normalize_handle(handle)
    except InvalidSyntax as exc:
        raise InvalidHandle(f"invalid handle {handle[:80]!r}: {exc}") from None
    if is_disallowed_tld(normalized, dev=allow_test):
        raise InvalidHandle(f"handle {normalized!r} uses a reserved top-level domain")
    return normalized


class HandleResolver:
    """Resolves handles to DIDs (a claim, not yet confirmed by the DID document).

    ``allow_private=True`` is the development mode: ``.test`` handles are accepted and HTTP lookups may
    reach loopback/private addresses over plain http. ``well_known_url`` maps a handle to the URL of its
    ``atproto-did`` file (default ``https://<handle>/.well-known/atproto-did``), for dev networks without
    DNS. ``nameservers`` overrides the system resolver configuration; ``dns=False`` turns DNS off.
    A ``session`` passed in should come from :func:`atstack.identity.net.guarded_session` to keep the
    resolver-level SSRF guard (IP literals and redirects are checked either way).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        allow_private: bool = False,
        timeout: float = 3.0,
        dns: bool = True,
        nameservers: Sequence[str] | None = None,
        well_known_url: Callable[[str], str] | None = None,
        ttl: float = 600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.use_dns = dns
        self.nameservers = list(nameservers) if nameservers is not None else None
        self.well_known_url = well_known_url or (lambda h: f"https://{h}/.well-known/atproto-did")
        self._session = session
        self._own_session = session is None
        self._dns_resolver: object | None = None
        self._cache: TTLCache[str, str] = TTLCache(ttl, max_entries, clock=clock)

    async def __aenter__(self) -> HandleResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def invalidate(self, handle: str) -> None:
        self._cache.pop(handle.lower())

    async def resolve(self, handle: str, *, refresh: bool = False) -> str | None:
        """The DID ``handle`` points to, or None when neither DNS nor HTTPS names one.

        Raises :class:`InvalidHandle` for a handle that may not be resolved at all.
        """
        normalized = normalize_resolvable_handle(handle, allow_test=self.allow_private)
        found = await self._cache.get_or_load(normalized, lambda: self._lookup(normalized), refresh=refresh)
        return found or None

    async def _lookup(self, handle: str) -> str:
        http_task = asyncio.create_task(self.resolve_http(handle))
        try:
            dns_did = await self.resolve_dns(handle) if self.use_dns else None
            if dns_did is not None:
                return dns_did
            return await http_task or _NOT_FOUND
        finally:
            if not http_task.done():
                http_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await http_task

    # DNS --------------------------------------------------------------------------------------------------

    def _dns(self) -> object | None:
        if self._dns_resolver is None:
            import dns.asyncresolver
            import dns.resolver

            try:
                resolver = dns.asyncresolver.Resolver(configure=self.nameservers is None)
            except dns.resolver.NoResolverConfiguration:
                log.warning("no DNS resolver configuration; handle lookups use HTTPS only")
                self.use_dns = False
                return None
            if self.nameservers is not None:
                resolver.nameservers = self.nameservers
            self._dns_resolver = resolver
        return self._dns_resolver

    async def resolve_dns(self, handle: str) -> str | None:
        """The DID in ``_atproto.<handle>`` TXT records, or None (no records, conflict, or lookup failed)."""
        import dns.exception

        resolver = self._dns()
        if resolver is None:
            return None
        try:
            answer = await resolver.resolve(  # type: ignore[attr-defined]
                f"_atproto.{handle}", "TXT", lifetime=self.timeout, search=False
            )
        except dns.exception.DNSException as exc:
            log.debug("DNS lookup for %s failed: %s", handle, exc)
            return None
        return did_from_txt_records(rdata.strings for rdata in answer)

    # HTTPS ------------------------------------------------------------------------------------------------

    async def resolve_http(self, handle: str) -> str | None:
        """The DID served at the handle's ``/.well-known/atproto-did``, or None."""
        if self._session is None:
            self._session = guarded_session(allow_private=self.allow_private)
        url = self.well_known_url(handle)
        try:
            status, body = await fetch_bounded(
                self._session,
                url,
                allow_private=self.allow_private,
                timeout=self.timeout,
                max_bytes=MAX_WELL_KNOWN_BYTES,
            )
        except (UnsafeAddress, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("HTTPS handle lookup %s failed: %s", url, exc)
            return None
        if not 200 <= status < 300:
            return None
        return did_from_well_known(body)
