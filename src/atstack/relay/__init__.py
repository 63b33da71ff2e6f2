"""The relay: crawls many hosts, validates every commit (Sync 1.1), serves one re-sequenced firehose.

Spec: atproto.com/specs/sync, /event-stream, /account; checklist §5–§7, §9–§10. A tour:

* :mod:`.app` — wiring; :mod:`.config` — :class:`RelayConfig`; :mod:`.context` — what handlers reach;
* :mod:`.slurper` — upstream ``subscribeRepos`` connections, cursors, reconnects, ``requestCrawl``;
* :mod:`.scheduler` — the ingest queue (in order per DID, parallel across DIDs, bounded);
* :mod:`.ingest` — per-event identity/host/status checks and state updates; :mod:`.validate` — the Sync 1.1
  checks of ``#commit``/``#sync``; :mod:`.resync` — ``getRepo`` on a broken chain;
* :mod:`.sequencer` — our seq, the persisted output log, publishing to the hub, retention;
* :mod:`.identity_cache` — DID → PDS host and parsed key; :mod:`.host` — host names and SSRF rules;
* :mod:`.state` — in-memory host and account state; :mod:`.store` — all SQL;
* :mod:`.handlers` — ``com.atproto.sync.*`` and the admin API/page; :mod:`.metrics` — Prometheus.

Non-obvious behaviours are listed in ``HACKING.md`` next to this file.
"""

from atstack.relay.app import RELAY_CONTEXT, create_app
from atstack.relay.config import DEFAULT_PORT, RelayConfig
from atstack.relay.context import RelayContext

__all__ = ["DEFAULT_PORT", "RELAY_CONTEXT", "RelayConfig", "RelayContext", "create_app"]
