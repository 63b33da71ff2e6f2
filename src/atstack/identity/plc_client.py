"""A client for a did:plc directory's HTTP API (plc.directory, or ``atstack plc``).

Spec: did:plc method specification ("DID Resolution", "Audit Logs", "Bulk Export") and the directory's
OpenAPI description: ``GET /<did>`` (DID document), ``/<did>/data``, ``/<did>/log``, ``/<did>/log/audit``,
``/<did>/log/last``, ``POST /<did>`` (submit a signed operation), ``GET /export``. Errors come back as
``{"message": "…"}`` with 400 (bad operation), 404 (DID not registered) or 410 (DID tombstoned).

The directory URL is configured by the operator, so it is trusted: no SSRF guard here (a dev network's
directory listens on loopback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from atstack.identity.errors import PlcError

__all__ = ["DEFAULT_PLC_URL", "PlcClient", "PlcError"]

DEFAULT_PLC_URL = "https://plc.directory"
_MAX_RESPONSE = 16 * 1024 * 1024  # an audit log or an export page is far below this


class PlcClient:
    """Calls one PLC directory through ``session`` (which the caller owns and closes)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def _url(self, did: str, suffix: str = "") -> str:
        # DIDs are ASCII with ':' and '%' legal; quote anything else so a bad input cannot change the path
        return f"{self.base_url}/{quote(did, safe=':%')}{suffix}"

    async def _request(self, method: str, url: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self.session.request(
                method, url, data=body, headers=headers, timeout=self.timeout
            ) as resp:
                raw = await resp.content.read(_MAX_RESPONSE + 1)
                if len(raw) > _MAX_RESPONSE:
                    raise PlcError(resp.status, f"response larger than {_MAX_RESPONSE} bytes")
                if resp.status >= 400:
                    raise PlcError(resp.status, _error_message(raw, resp.reason))
                return raw
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PlcError(None, f"PLC directory unreachable: {type(exc).__name__}: {exc}") from exc

    async def _get_json(self, url: str) -> Any:
        raw = await self._request("GET", url)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise PlcError(200, f"PLC directory sent invalid JSON: {exc.msg}") from None

    async def get_document(self, did: str) -> dict[str, Any]:
        """The DID document (``GET /<did>``)."""
        return _expect(await self._get_json(self._url(did)), dict)

    async def get_data(self, did: str) -> dict[str, Any]:
        """The DID's current PLC state (``GET /<did>/data``)."""
        return _expect(await self._get_json(self._url(did, "/data")), dict)

    async def get_log(self, did: str) -> list[dict[str, Any]]:
        """The DID's valid operation chain (``GET /<did>/log``)."""
        return _expect(await self._get_json(self._url(did, "/log")), list)

    async def get_last_op(self, did: str) -> dict[str, Any]:
        """The newest valid operation (``GET /<did>/log/last``)."""
        return _expect(await self._get_json(self._url(did, "/log/last")), dict)

    async def get_audit_log(self, did: str) -> list[dict[str, Any]]:
        """Every operation with ``cid``, ``nullified`` and ``createdAt`` (``GET /<did>/log/audit``)."""
        return _expect(await self._get_json(self._url(did, "/log/audit")), list)

    async def submit_operation(self, did: str, op: Mapping[str, Any]) -> None:
        """Submit a signed operation (``POST /<did>``); raises :class:`PlcError` if it is refused."""
        await self._request("POST", self._url(did), orjson.dumps(op))

    async def export(
        self, *, after: str | int | None = None, count: int | None = None
    ) -> list[dict[str, Any]]:
        """One page of ``GET /export`` (JSON lines). ``after`` is a ``createdAt`` string (legacy format,
        with ``nullified``) or an integer ``seq`` (``sequenced_op`` format)."""
        params: dict[str, str] = {}
        if after is not None:
            params["after"] = str(after)
        if count is not None:
            params["count"] = str(count)
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        raw = await self._request("GET", f"{self.base_url}/export" + (f"?{query}" if query else ""))
        try:
            return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise PlcError(200, f"PLC export sent an invalid JSON line: {exc.msg}") from None


def _error_message(raw: bytes, reason: str | None) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    text = raw[:200].decode("utf-8", "replace").strip()
    return text or reason or "error"


def _expect(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise PlcError(200, f"PLC directory sent a JSON {type(value).__name__}, expected {kind.__name__}")
    return value
