"""Resync: fetch a repo from its host's ``com.atproto.sync.getRepo`` and verify it (checklist §7).

Used when a repo's chain breaks (``since``/``prevData`` not matching what we accepted last, or a ``#sync``
to a commit we never saw). The CAR is read with a size cap, then checked by
:func:`atstack.core.repo_verify.verify_repo_car` (hashes, commit signature with the DID's current key, the
whole MST, every record present; records are not decoded — relays do not look inside them) in a worker
thread, so a large repo does not stall the event loop.
"""

from __future__ import annotations

import asyncio

import aiohttp

from atstack.core.crypto import PublicKey
from atstack.core.repo_verify import RepoVerifyError, VerifiedRepo, verify_repo_car
from atstack.relay.host import xrpc_base_url

__all__ = ["ResyncError", "fetch_repo"]


class ResyncError(Exception):
    """The repo could not be fetched or did not verify (reason in the message)."""


async def fetch_repo(
    session: aiohttp.ClientSession,
    hostname: str,
    did: str,
    key: PublicKey,
    *,
    allow_private: bool,
    max_bytes: int,
    timeout: float = 60.0,
) -> VerifiedRepo:
    url = f"{xrpc_base_url(hostname, allow_private=allow_private)}/xrpc/com.atproto.sync.getRepo"
    try:
        async with session.get(
            url, params={"did": did}, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                text = (await resp.content.read(2000)).decode("utf-8", "replace")
                raise ResyncError(f"getRepo for {did} at {hostname} answered {resp.status}: {text[:300]}")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise ResyncError(f"repo of {resp.content_length} bytes exceeds the {max_bytes} byte cap")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise ResyncError(f"repo exceeds the {max_bytes} byte cap")
                chunks.append(chunk)
            data = b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ResyncError(f"getRepo for {did} at {hostname} failed: {type(exc).__name__}: {exc}") from None
    try:
        return await asyncio.to_thread(
            verify_repo_car, data, did=did, public_key=key, check_records=False, max_size=max_bytes
        )
    except RepoVerifyError as exc:
        raise ResyncError(f"repo of {did} from {hostname} does not verify: {exc}") from None
