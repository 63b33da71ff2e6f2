"""``atstack jetstream``: the firehose as filtered, compressed JSON, wire-compatible with Bluesky's Jetstream.

Spec: checklist §13. One upstream ``subscribeRepos`` (relay or PDS) in; events stored by ``time_us`` with a
retention window; served on the v1 ``/subscribe`` WebSocket (filters, cursor replay, zstd with the v1
dictionary, ``options_update``) and the v2 ``network.bsky.jetstream.subscribeEvents``.

Modules: :mod:`.config`, :mod:`.app` (wiring), :mod:`.consumer` (upstream), :mod:`.convert` (CBOR commit →
JSON event, encoded once), :mod:`.store` (LMDB, by ``time_us``, retention), :mod:`.filters`,
:mod:`.subscriber` (bounded outbox, coalesced writes), :mod:`.fanout` (groups, index lookups, replay→live),
:mod:`.handlers` (v1 endpoint, status page), :mod:`.compression` (v1 zstd dictionary), :mod:`.v2`.
"""

from atstack.jetstream.app import JETSTREAM, JetstreamService, create_app
from atstack.jetstream.config import DEFAULT_PORT, JetstreamConfig

__all__ = ["DEFAULT_PORT", "JETSTREAM", "JetstreamConfig", "JetstreamService", "create_app"]
