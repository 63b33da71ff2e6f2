"""Outbound HTTP for identity lookups of user-controlled hosts (did:web, handle ``/.well-known``).

Checklist §9: "block SSRF to private IPs". A did:web host or a handle is chosen by whoever created the
account, so fetching it must not reach the machine's own network: loopback, RFC 1918, link-local (cloud
metadata at 169.254.169.254), CGNAT, unique-local IPv6 and every other non-global range are refused.

The check happens where the address is chosen, not before: :class:`GuardedResolver` is the aiohttp
resolver of the session, so the addresses aiohttp connects to are the ones that were checked (no window
for DNS rebinding between a check and the connect). aiohttp skips its resolver for IP literals, so
:func:`check_url` refuses those up front, and redirects are followed by hand so every hop is checked.
``allow_private=True`` (development and tests on loopback) turns all of this off.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from atstack.identity.errors import UnsafeAddress

__all__ = [
    "GuardedResolver",
    "check_url",
    "fetch_bounded",
    "guarded_session",
    "is_public_address",
]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
USER_AGENT = "atstack-identity"


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP address (IPv4-mapped IPv6 judged by its IPv4 part)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not ip.is_multicast


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_url(url: str, *, allow_private: bool, allow_http: bool = False) -> None:
    """Refuse URLs that are not http(s), carry credentials, or name a non-public IP literal.

    ``http`` is accepted only when ``allow_http`` (the caller decides: did:web on localhost in dev).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise UnsafeAddress(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and (allow_http or allow_private)):
        raise UnsafeAddress(f"refusing {parts.scheme or 'schemeless'} URL {url!r}")
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        raise UnsafeAddress(f"URL {url!r} has no host or carries credentials")
    if allow_private:
        return
    if _is_ip_literal(host) and not is_public_address(host.strip("[]")):
        raise UnsafeAddress(f"refusing non-public address {host}")
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        raise UnsafeAddress(f"refusing loopback host {host}")


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that drops non-public addresses and fails when none are left."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if is_public_address(r["host"])]
        if not public:
            # An OSError is what aiohttp expects from a resolver; it surfaces as ClientConnectorError.
            raise OSError(f"{host} resolves only to non-public addresses")
        return public

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(*, allow_private: bool, limit_per_host: int = 4) -> aiohttp.ClientSession:
    """A client session for user-controlled hosts: guarded resolver unless ``allow_private``.

    ``limit_per_host`` bounds concurrent connections to one host (a crude per-host rate limit).
    """
    connector = aiohttp.TCPConnector(
        resolver=None if allow_private else GuardedResolver(),
        limit_per_host=limit_per_host,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})


async def fetch_bounded(
    session: aiohttp.ClientSession,
    url: str,
    *,
    allow_private: bool,
    allow_http: bool = False,
    timeout: float,
    max_bytes: int,
    max_redirects: int = 3,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """GET ``url`` following at most ``max_redirects`` checked redirects; returns (status, body).

    The body is read up to ``max_bytes``; a longer body raises :class:`ValueError`. Network failures raise
    :class:`aiohttp.ClientError` or :class:`TimeoutError`; refused addresses :class:`UnsafeAddress`.
    """
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    for _hop in range(max_redirects + 1):
        check_url(url, allow_private=allow_private, allow_http=allow_http)
        kwargs: dict[str, Any] = {"allow_redirects": False, "timeout": client_timeout}
        if headers:
            kwargs["headers"] = headers
        async with session.get(url, **kwargs) as resp:
            location = resp.headers.get("Location")
            if resp.status in _REDIRECTS and location:
                url = urljoin(url, location)
                continue
            body = await resp.content.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise ValueError(f"response from {url} is larger than {max_bytes} bytes")
            return resp.status, body
    raise aiohttp.ClientError(f"more than {max_redirects} redirects fetching {url}")
