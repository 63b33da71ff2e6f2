"""Upstream subscriptions: one ``subscribeRepos`` connection per active host, resumed from its cursor.

Spec: atproto.com/specs/event-stream (framing, cursors, error frames), /sync; checklist §5, §7. For each host:

* connect to ``wss://<host>/xrpc/com.atproto.sync.subscribeRepos?cursor=<persisted cursor>`` (a new host
  starts at cursor 0 — its whole retained window — or live, per ``backfill_new_hosts``);
* read frames: a malformed frame (bad CBOR, bad header, over 5 MB) ends the connection, as the spec asks of
  consumers; a frame that decodes but breaks its lexicon is dropped alone; ``seq`` must increase on a
  connection (a lower one is dropped); the per-host token bucket paces reading (waiting, not dropping), and
  so does the bounded ingest queue;
* on disconnect, wait for this host's in-flight events to finish, then reconnect from the cursor they
  reached, with exponential backoff; after ``max_reconnect_failures`` failures in a row the host is marked
  ``offline``, and after ``idle_timeout`` without a frame ``idle`` (a ``requestCrawl`` wakes either);
* an error frame ``FutureCursor`` means the host's log went backwards (a reset): the cursor is dropped and
  we reconnect at its live tip.

``requestCrawl`` (and the seed list) goes through :meth:`Slurper.request_crawl`: hostname rules of
:mod:`atstack.relay.host`, banned hosts refused, a daily cap on new hosts, and a reachability check before
a new host is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

import aiohttp
from yarl import URL

from atstack.core.resequence import remember_frame
from atstack.core.stream import (
    MAX_FRAME_SIZE,
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    IdentityEvent,
    InfoEvent,
    StreamError,
    SyncEvent,
    decode_frame,
    parse_event,
)
from atstack.identity.net import guarded_session
from atstack.relay.config import RelayConfig
from atstack.relay.host import InvalidHost, normalize_hostname, subscribe_url, xrpc_base_url
from atstack.relay.ingest import Ingest, Item
from atstack.relay.metrics import RelayMetrics
from atstack.relay.scheduler import PartitionedQueue
from atstack.relay.sequencer import Sequencer
from atstack.relay.state import HostState
from atstack.relay.store import hosts as host_store
from atstack.relay.store import iso_time
from atstack.storage.sqlite import Database

__all__ = ["HostBanned", "HostUnreachable", "Slurper"]

log = logging.getLogger("atstack.relay.slurper")

_MESSAGE_TYPES = (CommitEvent, SyncEvent, IdentityEvent, AccountEvent)


class HostBanned(Exception):
    pass


class HostUnreachable(Exception):
    pass


class TooManyNewHosts(Exception):
    pass


class _Disconnect(Exception):
    """End this connection (then reconnect with backoff)."""

    def __init__(self, reason: str, *, reset_cursor: bool = False) -> None:
        super().__init__(reason)
        self.reset_cursor = reset_cursor


class Slurper:
    def __init__(
        self,
        config: RelayConfig,
        db: Database,
        ingest: Ingest,
        queue: PartitionedQueue[Item],
        sequencer: Sequencer,
        metrics: RelayMetrics,
    ) -> None:
        self.config = config
        self.db = db
        self.ingest = ingest
        self.queue = queue
        self.sequencer = sequencer
        self.metrics = metrics
        self.hosts: dict[str, HostState] = {}
        self.by_id: dict[int, HostState] = ingest.hosts_by_id
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._new_hosts: deque[float] = deque()
        self._live_start: set[int] = set()  # hosts to reconnect at the live tip (after FutureCursor)
        self._in = {t.TYPE: metrics.events_in.labels(t.TYPE) for t in _MESSAGE_TYPES}
        self._in_other = metrics.events_in.labels("other")
        self._connect_ok = metrics.connections.labels("ok")
        self._connect_failed = metrics.connections.labels("failed")

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.config.allow_private_hosts:
                self._session = aiohttp.ClientSession(headers={"User-Agent": "atstack-relay"})
            else:
                self._session = guarded_session(allow_private=False, limit_per_host=8)
        return self._session

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        rows = await self.db.read(host_store.list_hosts)
        counts = await self.db.read(host_store.account_counts)
        for row in rows:
            host = self._host_from_row(row)
            host.account_count = counts.get(row.id, 0)
        for host in self.hosts.values():
            if host.status == "active":
                self._spawn(host)
        for seed in self.config.crawl:
            try:
                await self.request_crawl(seed, admin=True, check=False)
            except (InvalidHost, HostBanned) as exc:
                log.warning("not crawling seed host %s: %s", seed, exc)
        self._update_gauges()

    async def close(self) -> None:
        self._closing = True
        tasks = [h.task for h in self.hosts.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _host_from_row(self, row: host_store.HostRow) -> HostState:
        trusted = row.hostname in self.config.trusted_hosts
        host = HostState.from_row(
            row,
            None if trusted else self.config.default_account_limit,
            None if trusted else self.config.default_events_per_second,
        )
        old = self.hosts.get(row.hostname)
        if old is not None:
            return old
        self.hosts[row.hostname] = host
        self.by_id[row.id] = host
        return host

    def _spawn(self, host: HostState) -> None:
        if self._closing or (host.task is not None and not host.task.done()):
            return
        host.task = asyncio.create_task(self._run(host), name=f"relay-host-{host.hostname}")

    def _update_gauges(self) -> None:
        counts: dict[str, int] = dict.fromkeys(("active", "idle", "offline", "throttled", "banned"), 0)
        connected = 0
        for host in self.hosts.values():
            counts[host.reported_status] = counts.get(host.reported_status, 0) + 1
            connected += host.connected
        for status, n in counts.items():
            self.metrics.hosts.labels(status).set(n)
        self.metrics.hosts_connected.set(connected)

    async def _set_status(self, host: HostState, status: str) -> None:
        host.status = status
        now = iso_time(self.config.clock())
        await self.db.execute_write(lambda conn: host_store.set_status(conn, host.id, status, now))
        self._update_gauges()

    # --- requestCrawl and admin ----------------------------------------------------------------------

    async def request_crawl(self, hostname: str, *, admin: bool = False, check: bool = True) -> HostState:
        """Subscribe to ``hostname`` (new, idle or offline); raises InvalidHost, HostBanned, HostUnreachable."""
        name = normalize_hostname(hostname, allow_private=self.config.allow_private_hosts)
        host = self.hosts.get(name)
        if host is not None:
            if host.status == "banned":
                raise HostBanned(name)
            if host.status != "active":
                host.failures = 0
                await self._set_status(host, "active")
            self._spawn(host)
            return host
        if not admin:
            now = time.monotonic()
            while self._new_hosts and now - self._new_hosts[0] > 86400:
                self._new_hosts.popleft()
            if len(self._new_hosts) >= self.config.new_hosts_per_day:
                raise TooManyNewHosts(name)
        if check:
            await self._check_reachable(name)
        if not admin:
            self._new_hosts.append(time.monotonic())
        now_text = iso_time(self.config.clock())
        row = await self.db.execute_write(lambda conn: host_store.insert_host(conn, name, "active", now_text))
        host = self._host_from_row(row)
        if host.status == "banned":
            raise HostBanned(name)
        log.info("new host", extra={"host": name})
        self._spawn(host)
        self._update_gauges()
        return host

    async def _check_reachable(self, name: str) -> None:
        url = f"{xrpc_base_url(name, allow_private=self.config.allow_private_hosts)}/xrpc/com.atproto.server.describeServer"
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status != 200:
                    raise HostUnreachable(f"{name} answered {resp.status} to describeServer")
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HostUnreachable(f"{name} is not reachable: {type(exc).__name__}: {exc}") from None

    def get(self, hostname: str) -> HostState | None:
        try:
            name = normalize_hostname(hostname, allow_private=True)
        except InvalidHost:
            return None
        return self.hosts.get(name)

    async def ban(self, hostname: str) -> HostState:
        name = normalize_hostname(hostname, allow_private=True)
        host = self.hosts.get(name)
        if host is None:
            now_text = iso_time(self.config.clock())
            row = await self.db.execute_write(
                lambda conn: host_store.insert_host(conn, name, "banned", now_text)
            )
            host = self._host_from_row(row)
        await self._set_status(host, "banned")
        if host.task is not None:
            host.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await host.task
            host.task = None
        return host

    async def unban(self, hostname: str) -> HostState:
        host = self.get(hostname)
        if host is None:
            raise KeyError(hostname)
        if host.status == "banned":
            host.failures = 0
            await self._set_status(host, "active")
            self._spawn(host)
        return host

    async def set_limits(self, host: HostState, account_limit: int | None, rate: float | None) -> None:
        """Admin limits (None: back to the default)."""
        trusted = host.hostname in self.config.trusted_hosts
        host.configured_account_limit, host.configured_rate = account_limit, rate
        host.account_limit = (
            account_limit
            if account_limit is not None
            else (None if trusted else self.config.default_account_limit)
        )
        host.events_per_second = (
            rate if rate is not None else (None if trusted else self.config.default_events_per_second)
        )
        host.limiter.set_rate(host.events_per_second)
        now_text = iso_time(self.config.clock())
        await self.db.execute_write(
            lambda conn: host_store.set_limits(conn, host.id, account_limit, rate, now_text)
        )

    # --- one host's connection loop ------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        return min(
            self.config.reconnect_max_delay, self.config.reconnect_min_delay * (2 ** max(0, failures - 1))
        )

    async def _run(self, host: HostState) -> None:
        config = self.config
        try:
            while not self._closing and host.status == "active":
                cursor = host.cursor
                if host.id in self._live_start:
                    cursor = None
                elif cursor is None and config.backfill_new_hosts:
                    cursor = 0
                url = URL(subscribe_url(host.hostname, allow_private=config.allow_private_hosts))
                if cursor is not None:
                    url = url.with_query({"cursor": str(cursor)})
                try:
                    ws = await self.session.ws_connect(
                        url,
                        max_msg_size=MAX_FRAME_SIZE,
                        heartbeat=30.0,
                        compress=0,
                        # no ws_receive: a timer per frame costs more than the rest of reading it; the
                        # idle watchdog below checks the host's last frame time instead
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                    )
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self._connect_failed.inc()
                    host.failures += 1
                    log.info("cannot connect to %s: %s", host.hostname, exc, extra={"host": host.hostname})
                else:
                    self._connect_ok.inc()
                    self._live_start.discard(host.id)
                    host.connected = True
                    host.last_seen_seq = None
                    self._update_gauges()
                    log.info("subscribed", extra={"host": host.hostname, "cursor": cursor})
                    host.last_event_at = time.monotonic()
                    went_idle = asyncio.Event()
                    watchdog = asyncio.create_task(self._watch_idle(host, ws, went_idle))
                    try:
                        got_any = await self._read(host, ws)
                        if went_idle.is_set():
                            raise TimeoutError
                        if got_any:
                            host.failures = 0
                        host.failures += 1  # a clean close also backs off a little
                    except _Disconnect as exc:
                        host.failures += 1
                        log.warning(
                            "dropping connection to %s: %s", host.hostname, exc, extra={"host": host.hostname}
                        )
                        if exc.reset_cursor:
                            self._live_start.add(host.id)
                    except TimeoutError:
                        log.info("host %s idle; unsubscribing", host.hostname, extra={"host": host.hostname})
                        await ws.close()
                        host.connected = False
                        await host.tracker.wait_idle()
                        await self._set_status(host, "idle")
                        return
                    except (aiohttp.ClientError, OSError) as exc:
                        host.failures += 1
                        log.info(
                            "connection to %s lost: %s", host.hostname, exc, extra={"host": host.hostname}
                        )
                    finally:
                        watchdog.cancel()
                        host.connected = False
                        self._update_gauges()
                        with contextlib.suppress(Exception):
                            await ws.close()
                # resubscribe only from where every event read so far has been handled
                await host.tracker.wait_idle()
                if host.id in self._live_start:
                    await self.db.execute_write(lambda conn: host_store.reset_cursor(conn, host.id))
                    host.tracker.cursor = None
                if host.failures >= config.max_reconnect_failures:
                    log.warning("host %s offline after %d failures", host.hostname, host.failures)
                    await self._set_status(host, "offline")
                    return
                await asyncio.sleep(self._backoff(host.failures))
        except asyncio.CancelledError:
            host.connected = False
            raise
        except Exception:
            log.exception("subscription to %s failed", host.hostname)

    async def _watch_idle(
        self, host: HostState, ws: aiohttp.ClientWebSocketResponse, went_idle: asyncio.Event
    ) -> None:
        """Set ``went_idle`` and close ``ws`` once the host has sent nothing for ``idle_timeout``."""
        timeout = self.config.idle_timeout
        while True:
            quiet = time.monotonic() - host.last_event_at
            if quiet >= timeout:
                went_idle.set()
                await ws.close()
                return
            await asyncio.sleep(min(timeout - quiet + 0.01, 60.0))

    async def _read(self, host: HostState, ws: aiohttp.ClientWebSocketResponse) -> bool:
        got_any = False
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is aiohttp.WSMsgType.BINARY:
                got_any = True
                pending = self._frame(host, msg.data)
                if pending is not None:
                    await pending
            elif kind is aiohttp.WSMsgType.ERROR:
                exc = msg.data if isinstance(msg.data, BaseException) else ws.exception()
                if (
                    isinstance(exc, aiohttp.WebSocketError)
                    and exc.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                ):
                    self.ingest.drop("frame_too_big")
                    raise _Disconnect(f"frame over {MAX_FRAME_SIZE} bytes")
                raise aiohttp.ClientError(f"websocket error: {exc}")
            elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return got_any
            # text frames are not part of the protocol: ignored

    def _frame(self, host: HostState, data: bytes) -> Coroutine[Any, Any, None] | None:
        """Take one received frame. Synchronous in the steady state; returns what must be awaited before the
        next frame is read when the host is over its rate or the ingest queue is full (back-pressure)."""
        received = time.perf_counter()
        host.count_event()
        try:
            frame = decode_frame(data)
        except StreamError as exc:
            self.ingest.drop("bad_frame")
            raise _Disconnect(f"malformed frame: {exc}") from None
        try:
            evt = parse_event(frame)
        except StreamError as exc:
            self.ingest.drop("invalid_event")
            seq = frame.body.get("seq")
            log.info("invalid event from %s: %s", host.hostname, exc, extra={"host": host.hostname})
            if type(seq) is int and (host.last_seen_seq is None or seq > host.last_seen_seq):
                # it still moves the cursor: there is nothing to gain from being sent it again
                host.last_seen_seq = seq
                host.tracker.begin(seq)
                advanced = host.tracker.finish(seq)
                if advanced is not None:
                    self.sequencer.set_cursor(host.id, advanced)
            return
        kind = type(evt)
        if kind is ErrorFrame:
            assert isinstance(evt, ErrorFrame)
            self._in_other.inc()
            raise _Disconnect(
                f"error frame {evt.error}: {evt.message}", reset_cursor=evt.error == "FutureCursor"
            )
        if kind not in (CommitEvent, SyncEvent, IdentityEvent, AccountEvent):
            self._in_other.inc()
            if kind is not InfoEvent:
                self.ingest.drop("unknown_type")
            return
        assert isinstance(evt, CommitEvent | SyncEvent | IdentityEvent | AccountEvent)
        if kind is CommitEvent:
            remember_frame(evt, data, frame.body)  # type: ignore[arg-type]  # re-sent with our seq spliced in
        self._in[evt.TYPE].inc()
        seq = evt.seq
        last = host.last_seen_seq
        if last is not None and seq <= last:
            self.ingest.drop("seq_regression")
            return
        host.last_seen_seq = seq
        did = evt.repo if kind is CommitEvent else evt.did  # type: ignore[union-attr]
        item = Item(host, seq, evt, received)
        delay = host.limiter.take_now()
        if delay:
            return self._submit_later(delay, did, item)
        host.tracker.begin(seq)
        if not self.queue.offer(did, item):
            return self.queue.submit(did, item)
        return None

    async def _submit_later(self, delay: float, did: str, item: Item) -> None:
        await asyncio.sleep(delay)
        item.host.tracker.begin(item.seq)
        await self.queue.submit(did, item)

    def summaries(self) -> list[dict[str, Any]]:
        return [h.summary() for h in sorted(self.hosts.values(), key=lambda h: h.id)]
