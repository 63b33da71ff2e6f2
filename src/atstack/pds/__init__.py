"""``atstack pds``: a Personal Data Server — accounts, signed repos, blobs, the sync API and the firehose.

Spec: atproto.com/specs (account, repository, sync, event-stream, xrpc, blob); checklist §4–§11. A tour:

* :mod:`.config` — :class:`PdsConfig` (flags and ``ATSTACK_PDS_*`` env in :mod:`atstack.cli.pds`);
* :mod:`.app` — ``create_app(config)``: wiring, startup, shutdown; :mod:`.context` — what handlers get;
* :mod:`.handlers` — one module per namespace (``server``, ``session``, ``repo``, ``sync``, ``handles``, …),
  each with ``register(router, ctx)``; new modules are picked up automatically;
* :mod:`.store` — all SQL (one SQLite database; layout decision in its docstring);
* :mod:`.repo_writer` — the write path (commit built from a snapshot, persisted with its event in one
  transaction); :mod:`.records` — record validation; :mod:`.sequencer` — events and firehose publishing;
* :mod:`.accounts` — account lifecycle and its events; :mod:`.auth`, :mod:`.jwt`, :mod:`.passwords`,
  :mod:`.service_auth` — sessions and tokens; :mod:`.blobstore` — blob files; :mod:`.crawlers` — relays.
"""

from atstack.pds.app import PDS_CONTEXT, create_app
from atstack.pds.config import DEFAULT_PORT, PdsConfig
from atstack.pds.context import PdsContext

__all__ = ["DEFAULT_PORT", "PDS_CONTEXT", "PdsConfig", "PdsContext", "create_app"]
