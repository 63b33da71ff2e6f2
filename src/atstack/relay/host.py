"""Upstream host names: normalising what ``requestCrawl`` and DID documents give us, and the SSRF rules.

A host is named by its hostname, with ``:<port>`` only when the port is not the scheme's default
(``pds.example.com``, ``localhost:2583``). ``requestCrawl`` may send a bare name or a URL; a DID document's
PDS endpoint is a URL. Both normalise to the same key, so "is this DID's PDS the host that sent the
event?" is a string comparison.

Without ``allow_private`` (production), a host must be a DNS name with at least two labels and no port:
no IP literals, no ``localhost``, no ``.local``-style reserved names; the address it resolves to is checked
again at connect time (the guarded resolver of :mod:`atstack.identity.net`), and we dial ``wss://``. With
``allow_private`` (local development) anything hostname-shaped with an optional port is accepted, and
loopback names and IP literals are dialled over plain ``ws://``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["InvalidHost", "host_from_endpoint", "normalize_hostname", "subscribe_url", "xrpc_base_url"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_RESERVED_TLDS = frozenset(
    ("alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion", "test")
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class InvalidHost(ValueError):
    """A hostname that is malformed or not allowed (reason in the message)."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost") or _is_ip(host)


def normalize_hostname(value: str, *, allow_private: bool) -> str:
    """The host key for ``value`` (a bare hostname, ``host:port`` or an http(s)/ws(s) URL)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidHost("hostname is required")
    text = value.strip()
    if len(text) > 300 or not text.isascii():
        raise InvalidHost("hostname is too long or not ASCII")
    scheme = None
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidHost(f"unsupported URL scheme {scheme!r}")
        if parts.username or parts.password or parts.query or parts.fragment or parts.path.strip("/"):
            raise InvalidHost("hostname URL must be scheme://host[:port] only")
        netloc = parts.netloc
    else:
        netloc = text.rstrip("/")
        if "/" in netloc or "@" in netloc or "?" in netloc or "#" in netloc:
            raise InvalidHost("hostname must not contain a path, user or query")
    try:
        parts = urlsplit(f"//{netloc}")
        host = (parts.hostname or "").rstrip(".").lower()
        port = parts.port
    except ValueError as exc:
        raise InvalidHost(f"malformed hostname {value!r}: {exc}") from None
    if not host:
        raise InvalidHost(f"malformed hostname {value!r}")
    if port is not None and scheme is not None and port == _DEFAULT_PORTS[scheme]:
        port = None
    if port is not None and port == 443 and scheme is None:
        port = None
    ip = _is_ip(host)
    if not ip:
        labels = host.split(".")
        if not all(_LABEL.match(label) for label in labels):
            raise InvalidHost(f"malformed hostname {value!r}")
    if not allow_private:
        if port is not None:
            raise InvalidHost("hosts with an explicit port are only allowed in development mode")
        if ip or _is_loopback_name(host):
            raise InvalidHost("IP addresses and localhost are only allowed in development mode")
        labels = host.split(".")
        if len(labels) < 2 or labels[-1] in _RESERVED_TLDS or labels[-1][0].isdigit():
            raise InvalidHost(f"{host!r} is not a public DNS name")
    if ip and ":" in host:
        host = f"[{host.strip('[]')}]"
    return f"{host}:{port}" if port is not None else host


def host_from_endpoint(endpoint: str | None) -> str | None:
    """The host key of a DID document's PDS endpoint (no checks beyond parsing: only used to compare)."""
    if not endpoint:
        return None
    try:
        return normalize_hostname(endpoint, allow_private=True)
    except InvalidHost:
        return None


def _plain(hostname: str, allow_private: bool) -> bool:
    host = urlsplit(f"//{hostname}").hostname or ""
    return allow_private and _is_loopback_name(host)


def subscribe_url(hostname: str, *, allow_private: bool) -> str:
    scheme = "ws" if _plain(hostname, allow_private) else "wss"
    return f"{scheme}://{hostname}/xrpc/com.atproto.sync.subscribeRepos"


def xrpc_base_url(hostname: str, *, allow_private: bool) -> str:
    scheme = "http" if _plain(hostname, allow_private) else "https"
    return f"{scheme}://{hostname}"
