"""Everything a relay request handler or background task reaches: the parts built at startup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from atstack.relay.config import RelayConfig
from atstack.relay.metrics import RelayMetrics
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.relay.identity_cache import IdentityCache
    from atstack.relay.ingest import Ingest, Item
    from atstack.relay.scheduler import PartitionedQueue
    from atstack.relay.sequencer import Sequencer
    from atstack.relay.slurper import Slurper
    from atstack.storage.sqlite import Database
    from atstack.xrpc.stream import EventStreamHub

__all__ = ["RelayContext"]


@dataclass
class RelayContext:
    config: RelayConfig
    router: XRPCRouter
    metrics: RelayMetrics
    # set when the app starts (see atstack.relay.app)
    db: Database = field(init=False)
    sequencer: Sequencer = field(init=False)
    hub: EventStreamHub = field(init=False)
    identities: IdentityCache = field(init=False)
    ingest: Ingest = field(init=False)
    queue: PartitionedQueue[Item] = field(init=False)
    slurper: Slurper = field(init=False)
    started: bool = False

    async def wait_idle(self) -> None:
        """Until every event read so far is handled, written and published (tests, benchmarks)."""
        await self.queue.wait_idle()
        await self.sequencer.wait_flushed()
