"""Handling one upstream event: identity and host checks, Sync 1.1 validation, state update, re-sequencing.

Spec: atproto.com/specs/sync ("Relay" behaviour of Sync 1.1), /account, checklist §6–§7, §10. Called by the
:class:`~atstack.relay.scheduler.PartitionedQueue` workers, so events of one DID arrive here one at a time and
in upstream order. For each type:

* ``#commit`` / ``#sync`` — the DID must resolve, its PDS must be the sending host (re-resolved once before
  giving up, in case the account just migrated), the account active here and at its host; then
  :mod:`atstack.relay.validate`. A bad signature is re-checked once with a freshly resolved key. A broken
  chain triggers a resync from the host's ``getRepo``: on success we emit a ``#sync`` for the fetched commit
  (and drop the commit if the ``#sync`` covers it); if the resync cannot happen, the commit — valid on its
  own — is passed on and the repo stays flagged ``desynchronized``.
* ``#identity`` — the DID is re-resolved now; the event is passed on, with its handle only when the sending
  host is the DID's PDS (as Bluesky's relay does).
* ``#account`` — only from the DID's PDS; records the upstream status and passes the event on with our own
  view (a repo taken down here stays ``takendown`` whatever the host says).

Every drop is counted by reason (``relay_events_dropped_total``); when an event is done, the host's cursor
tracker advances and the sequencer persists the new cursor with the next batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp

from atstack.core.car import write_car
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atstack.relay.config import RelayConfig
from atstack.relay.identity_cache import DidIdentity, IdentityCache, IdentityUnavailable
from atstack.relay.metrics import RelayMetrics
from atstack.relay.resync import ResyncError, fetch_repo
from atstack.relay.sequencer import Sequencer
from atstack.relay.state import Account, HostState
from atstack.relay.store import accounts as account_store
from atstack.relay.store import iso_time
from atstack.relay.validate import BadSignature, Drop, Verified, verify_commit_event, verify_sync_event
from atstack.storage.sqlite import Database

__all__ = ["Ingest", "Item"]

log = logging.getLogger("atstack.relay.ingest")

UpstreamEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent


@dataclass(slots=True)
class Item:
    host: HostState
    seq: int  # the upstream seq
    event: UpstreamEvent
    received: float  # perf_counter when the frame arrived


class Ingest:
    def __init__(
        self,
        config: RelayConfig,
        db: Database,
        sequencer: Sequencer,
        identities: IdentityCache,
        metrics: RelayMetrics,
        hosts_by_id: dict[int, HostState],
        http: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.config = config
        self.db = db
        self.sequencer = sequencer
        self.identities = identities
        self.metrics = metrics
        self.hosts_by_id = hosts_by_id
        self._http = http
        self.io: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext  # type: ignore[assignment]
        self.accounts: dict[str, Account] = {}
        self._complete = False  # every account row is in memory: a miss means "unknown DID"
        self._accepted = {
            t: metrics.events_accepted.labels(t) for t in ("#commit", "#sync", "#identity", "#account")
        }
        self._validation = {t: metrics.validation_seconds.labels(t) for t in ("#commit", "#sync")}
        self._drops: dict[str, Any] = {}

    async def load(self, preload_limit: int = 200_000) -> None:
        """Read every account into memory when there are at most ``preload_limit`` of them."""

        def read(conn: Any) -> list[account_store.AccountRow] | None:
            n = conn.execute("SELECT count(*) FROM account").fetchone()[0]
            if n > preload_limit:
                return None
            return account_store.list_accounts_after(conn, None, n + 1)

        rows = await self.db.read(read)
        if rows is not None:
            self.accounts = {row.did: Account.from_row(row) for row in rows}
            self._complete = True

    def drop(self, reason: str) -> None:
        counter = self._drops.get(reason)
        if counter is None:
            counter = self._drops[reason] = self.metrics.events_dropped.labels(reason)
        counter.inc()

    # --- entry point -----------------------------------------------------------------------------------

    async def handle(self, item: Item) -> None:
        evt = item.event
        try:
            if type(evt) is CommitEvent:
                await self._commit(item, evt)
            elif type(evt) is SyncEvent:
                await self._sync(item, evt)
            elif type(evt) is IdentityEvent:
                await self._identity(item, evt)
            elif type(evt) is AccountEvent:
                await self._account(item, evt)
        except Drop as exc:
            self.drop(exc.reason)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("dropped %s from %s: %s", evt.TYPE, item.host.hostname, exc)
        except Exception:
            # a bug or a storage failure: counted and logged; holding the cursor back forever would wedge
            # the host, so the event is given up like a drop
            self.drop("internal_error")
            log.exception("handling %s from %s failed", evt.TYPE, item.host.hostname)
        finally:
            advanced = item.host.tracker.finish(item.seq)
            if advanced is not None:
                self.sequencer.set_cursor(item.host.id, advanced)

    # --- shared checks ---------------------------------------------------------------------------------

    async def get_account(self, did: str) -> Account | None:
        acc = self.accounts.get(did)
        if acc is not None or self._complete:
            return acc
        async with self.io():
            row = await self.db.read(lambda conn: account_store.get_account(conn, did))
        if row is None:
            return self.accounts.get(did)
        return self.accounts.setdefault(did, Account.from_row(row))

    async def _refresh(self, did: str) -> DidIdentity | None:
        try:
            async with self.io():
                return await self.identities.refresh(did)
        except IdentityUnavailable:
            return None

    async def _identity_on(self, host: HostState, did: str) -> DidIdentity:
        """The DID's identity, which must name ``host`` as its PDS (re-resolved once before giving up)."""
        ident = self.identities.cached(did)
        if ident is None:
            try:
                async with self.io():
                    ident = await self.identities.get(did)
            except IdentityUnavailable as exc:
                raise Drop("identity_unavailable", str(exc)) from None
        if ident.host != host.hostname:
            refreshed = await self._refresh(did)
            if refreshed is not None:
                ident = refreshed
            if ident.host != host.hostname:
                raise Drop("wrong_host", f"{did} is hosted at {ident.host}, not {host.hostname}")
        return ident

    async def _account_on(self, host: HostState, did: str) -> Account:
        """The account, created (within the host's account limit) or moved to ``host`` as needed."""
        acc = await self.get_account(did)
        if acc is None:
            if host.account_limit is not None and host.account_count >= host.account_limit:
                raise Drop("host_account_limit", f"{host.hostname} is at its limit of {host.account_limit}")
            acc = Account(did, host.id, iso_time(self.config.clock()))
            self.accounts[did] = acc
            host.account_count += 1
            self.sequencer.save_account(acc)
        elif acc.host_id != host.id:
            previous = self.hosts_by_id.get(acc.host_id) if acc.host_id is not None else None
            if previous is not None:
                previous.account_count -= 1
            acc.host_id = host.id
            host.account_count += 1
            self.sequencer.save_account(acc)
        return acc

    def _check_active(self, acc: Account) -> None:
        if acc.status is not None:
            raise Drop("takendown", f"{acc.did} is {acc.status} here")
        if acc.upstream_status is not None:
            raise Drop("inactive_account", f"{acc.did} is {acc.upstream_status} at its host")

    def _verify(
        self, did: str, ident: DidIdentity, check: Callable[[Any], Verified], kind: str, started: float
    ) -> Verified:
        """``check`` with the key we hold, timed from ``started`` into the validation histogram. Synchronous:
        the steady state needs no await. A :class:`BadSignature` is passed up untimed, for the caller to go
        on with :meth:`_verify_again`, which times the whole attempt."""
        if ident.key is None:
            raise Drop("identity_unavailable", f"{did} has no atproto signing key")
        timed = True
        try:
            return check(ident.key)
        except BadSignature:
            timed = False
            raise
        finally:
            if timed:
                self._validation[kind].observe(time.perf_counter() - started)

    async def _verify_again(
        self,
        did: str,
        ident: DidIdentity,
        check: Callable[[Any], Verified],
        kind: str,
        started: float,
        bad: BadSignature,
    ) -> Verified:
        """After ``bad``: the key may have rotated without an #identity reaching us yet, so resolve the DID
        again and check once more with the new key (``bad`` is raised when there is no new key)."""
        try:
            refreshed = await self._refresh(did)
            if refreshed is None or refreshed.key is None or refreshed.key == ident.key:
                raise bad
            return check(refreshed.key)
        finally:
            self._validation[kind].observe(time.perf_counter() - started)

    # --- per type --------------------------------------------------------------------------------------

    async def _commit(self, item: Item, evt: CommitEvent) -> None:
        host, did = item.host, evt.repo
        acc = self.accounts.get(did)
        if acc is not None and acc.rev is not None and evt.rev <= acc.rev:
            raise Drop("stale_rev", f"rev {evt.rev} is not after {acc.rev}")  # before any lookup
        # The steady state (identity cached on this host, account known here) needs no await.
        ident = self.identities.cached(did)
        if ident is None or ident.host != host.hostname:
            ident = await self._identity_on(host, did)
        if acc is None or acc.host_id != host.id:
            acc = await self._account_on(host, did)
        self._check_active(acc)
        config = self.config
        now = config.clock()
        state = acc.repo_state()

        def check(key: Any) -> Verified:
            return verify_commit_event(
                evt, key, state, now, future_tolerance=config.future_rev_tolerance, lenient=config.lenient
            )

        started = time.perf_counter()
        try:
            verified = self._verify(did, ident, check, "#commit", started)
        except BadSignature as bad:
            verified = await self._verify_again(did, ident, check, "#commit", started, bad)
        if not verified.chain_ok:
            log.info(
                "chain break",
                extra={"did": did, "host": host.hostname, "since": evt.since, "rev_held": acc.rev},
            )
            if (
                await self._resync(host, acc, ident, emit_sync=True)
                and acc.rev is not None
                and acc.rev >= evt.rev
            ):
                raise Drop("chain_break", f"{did}: the #sync after the resync covers rev {evt.rev}")
            if acc.rev is not None and evt.rev <= acc.rev:
                raise Drop("stale_rev", f"rev {evt.rev} is not after {acc.rev}")
        acc.rev = evt.rev
        acc.commit_cid = verified.cid
        acc.data_cid = verified.commit.data
        self.sequencer.count_ops(did, evt.ops)
        self.sequencer.emit(did, evt, item.received)
        self.sequencer.defer_account(acc)  # a new head only: written at the next checkpoint
        self._accepted["#commit"].inc()

    async def _sync(self, item: Item, evt: SyncEvent) -> None:
        host, did = item.host, evt.did
        ident = await self._identity_on(host, did)
        acc = await self._account_on(host, did)
        self._check_active(acc)
        config = self.config
        now = config.clock()
        state = acc.repo_state()

        def check(key: Any) -> Verified:
            return verify_sync_event(evt, key, state, now, future_tolerance=config.future_rev_tolerance)

        started = time.perf_counter()
        try:
            verified = self._verify(did, ident, check, "#sync", started)
        except BadSignature as bad:
            verified = await self._verify_again(did, ident, check, "#sync", started, bad)
        acc.rev = evt.rev
        acc.commit_cid = verified.cid
        acc.data_cid = verified.commit.data
        self.sequencer.emit(did, evt, item.received)
        self.sequencer.defer_account(acc)
        self._accepted["#sync"].inc()
        if not verified.chain_ok:
            # the repo moved to a commit we never saw: refresh what we derive from its contents
            await self._resync(host, acc, ident, emit_sync=False)

    async def _identity(self, item: Item, evt: IdentityEvent) -> None:
        host, did = item.host, evt.did
        try:
            async with self.io():
                ident: DidIdentity | None = await self.identities.refresh(did, force=True)
        except IdentityUnavailable:
            ident = None
        handle: str | None = None
        if ident is not None and ident.host == host.hostname:
            acc = await self._account_on(host, did)
            if acc.status is not None:
                raise Drop("takendown", f"{did} is {acc.status} here")
            handle = evt.handle
        else:
            acc = await self.get_account(did)
            if acc is not None and acc.status is not None:
                raise Drop("takendown", f"{did} is {acc.status} here")
        self.sequencer.emit(did, IdentityEvent(seq=0, did=did, time=evt.time, handle=handle), item.received)
        self._accepted["#identity"].inc()

    async def _account(self, item: Item, evt: AccountEvent) -> None:
        host, did = item.host, evt.did
        await self._identity_on(host, did)
        acc = await self._account_on(host, did)
        acc.upstream_status = None if evt.active else (evt.status or "deactivated")
        self.sequencer.save_account(acc)
        status = acc.status if acc.status is not None else evt.status
        out = AccountEvent(seq=0, did=did, time=evt.time, active=acc.active, status=status)
        self.sequencer.emit(did, out, item.received)
        self._accepted["#account"].inc()

    # --- resync ----------------------------------------------------------------------------------------

    async def _resync(self, host: HostState, acc: Account, ident: DidIdentity, *, emit_sync: bool) -> bool:
        """Fetch and verify the repo from its host; with ``emit_sync`` move our state to it and announce it
        with a ``#sync``. Returns whether our state now matches the host's repo."""
        config, metrics = self.config, self.metrics
        now = time.monotonic()
        acc.desynchronized = True
        self.sequencer.save_account(acc)
        if now - acc.last_resync < config.resync_interval or ident.key is None:
            metrics.resyncs.labels("skipped").inc()
            return False
        acc.last_resync = now
        try:
            async with self.io():
                repo = await fetch_repo(
                    self._http(),
                    host.hostname,
                    acc.did,
                    ident.key,
                    allow_private=config.allow_private_hosts,
                    max_bytes=config.max_repo_bytes,
                )
        except ResyncError as exc:
            log.warning("resync failed: %s", exc, extra={"did": acc.did, "host": host.hostname})
            metrics.resyncs.labels("failed").inc()
            return False
        if acc.rev is not None and repo.rev < acc.rev:
            log.warning("resync got an older repo", extra={"did": acc.did, "rev": repo.rev, "held": acc.rev})
            metrics.resyncs.labels("failed").inc()
            return False
        if emit_sync:
            if repo.commit_cid != acc.commit_cid:
                block = repo.raw_blocks[repo.commit_cid.cid_bytes]
                blocks = write_car([repo.commit_cid], [(repo.commit_cid, block)])
                sync = SyncEvent(
                    seq=0, did=acc.did, blocks=blocks, rev=repo.rev, time=iso_time(config.clock())
                )
                self.sequencer.emit(acc.did, sync)
                self._accepted["#sync"].inc()
            acc.rev, acc.commit_cid, acc.data_cid = repo.rev, repo.commit_cid, repo.data_cid
        elif repo.commit_cid != acc.commit_cid:
            # the host moved on since the #sync; what follows on the stream will catch us up
            metrics.resyncs.labels("moved").inc()
            return False
        self.sequencer.replace_records(acc.did, repo.records)
        acc.desynchronized = False
        self.sequencer.save_account(acc)
        metrics.resyncs.labels("ok").inc()
        return True

    # --- moderation ------------------------------------------------------------------------------------

    async def set_takedown(self, did: str, takedown: bool) -> Account:
        acc = await self.get_account(did)
        if acc is None:
            acc = Account(did, None, iso_time(self.config.clock()))
            self.accounts[did] = acc
        acc.status = "takendown" if takedown else None
        self.sequencer.save_account(acc)
        event = AccountEvent(
            seq=0, did=did, time=iso_time(self.config.clock()), active=acc.active, status=acc.public_status
        )
        self.sequencer.emit(did, event)
        return acc
