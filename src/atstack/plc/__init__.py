"""``atstack plc``: a did:plc directory compatible with plc.directory's HTTP API.

Spec: did:plc method specification v0.3.0. :mod:`.app` wires the service, :mod:`.handlers` holds the HTTP
API, :mod:`.store` all SQL, :mod:`.config` the settings. Operation rules live in :mod:`atstack.core.plc_op`.
"""

from atstack.plc.app import PLC_STORE, create_app
from atstack.plc.config import DEFAULT_PORT, PlcConfig
from atstack.plc.store import AddResult, LogEntry, PlcStore

__all__ = ["DEFAULT_PORT", "PLC_STORE", "AddResult", "LogEntry", "PlcConfig", "PlcStore", "create_app"]
