"""Configuration of the Personal Data Server (``atstack pds``).

Every field has a flag and an ``ATSTACK_PDS_*`` environment variable in :mod:`atstack.cli.pds`; the admin
password also reads ``ATSTACK_ADMIN_PASSWORD`` (DESIGN "Command line and ports"). Derived values:

* ``public_url`` — how clients and the DID documents reach us: ``http://localhost:<port>`` when the hostname
  is ``localhost`` (development), else ``https://<hostname>``;
* ``service_did`` — ``did:web:<hostname>``, the audience of our session tokens and of service auth;
* ``service_handle_domains`` — handle suffixes accounts may register under: ``.test`` in development, else
  ``.<hostname>``;
* ``dev`` — development mode (hostname ``localhost``): ``.test`` handles, http and loopback hosts allowed.

The JWT secret, when not given, is generated once and kept in ``<data_dir>/jwt_secret`` (mode 0600), so
sessions survive restarts. ``clock`` is the service's notion of "now" in Unix seconds (token expiry,
timestamps); tests pass one they can move. ``event_retention`` bounds the ``subscribeRepos`` replay window:
older events are trimmed every ``event_trim_interval`` seconds (:meth:`atstack.pds.sequencer.Sequencer.trim`).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ACCESS_TOKEN_TTL",
    "DEFAULT_BLOB_LIMIT",
    "DEFAULT_EVENT_RETENTION",
    "DEFAULT_JSON_LIMIT",
    "DEFAULT_PORT",
    "REFRESH_TOKEN_TTL",
    "PdsConfig",
    "load_or_create_secret",
]

DEFAULT_PORT = 2583
DEFAULT_BLOB_LIMIT = 5 * 1024 * 1024  # the reference PDS's default upload limit
DEFAULT_JSON_LIMIT = 150 * 1024  # the reference's JSON body limit (a record over it cannot arrive as JSON)
ACCESS_TOKEN_TTL = 2 * 3600  # the reference's 120 minutes
REFRESH_TOKEN_TTL = 90 * 86400
# How long the event log keeps an event for cursor replay. The reference PDS replays up to 24 h by default
# (``repoBackfillLimitMs``); relays keep about 72 h, and a consumer that was down a weekend should not
# have to resync from our repos: 72 h.
DEFAULT_EVENT_RETENTION = 72 * 3600.0


def load_or_create_secret(path: Path) -> str:
    """The secret kept in ``path``; a new random one is written (0600, fsync) when the file is missing."""
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return secret


@dataclass(slots=True)
class PdsConfig:
    """Settings of one PDS. Only ``data_dir`` is required; see the module docstring for derived values."""

    data_dir: Path
    hostname: str = "localhost"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_url: str | None = None
    plc_url: str = "https://plc.directory"
    admin_password: str | None = None
    jwt_secret: str | None = None
    service_handle_domains: tuple[str, ...] | None = None
    invite_required: bool = False
    blob_upload_limit: int = DEFAULT_BLOB_LIMIT
    json_limit: int = DEFAULT_JSON_LIMIT
    crawlers: tuple[str, ...] = ()
    lexicon_dir: Path | None = None
    contact_email: str | None = None
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    access_token_ttl: int = ACCESS_TOKEN_TTL
    refresh_token_ttl: int = REFRESH_TOKEN_TTL
    rate_limits: bool = True
    blob_temp_ttl: float = 6 * 3600  # uploads no record references are deleted after this (spec: ≥ 1 h)
    blob_gc_interval: float = 600
    event_retention: float = DEFAULT_EVENT_RETENTION  # firehose events older than this are trimmed
    event_trim_interval: float = 600  # how often the trim runs (seconds)
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.hostname = self.hostname.strip().lower()
        if not self.hostname or "/" in self.hostname or ":" in self.hostname:
            raise ValueError(f"hostname must be a bare host name, not {self.hostname!r}")
        if self.public_url is None:
            self.public_url = (
                f"http://localhost:{self.port}"
                if self.hostname == "localhost"
                else f"https://{self.hostname}"
            )
        self.public_url = self.public_url.rstrip("/")
        if self.service_handle_domains is None:
            self.service_handle_domains = (".test",) if self.dev else (f".{self.hostname}",)
        self.service_handle_domains = tuple(
            d.lower() if d.startswith(".") else f".{d.lower()}" for d in self.service_handle_domains
        )
        if self.blob_upload_limit < 1:
            raise ValueError("blob_upload_limit must be positive")
        if self.event_retention <= 0 or self.event_trim_interval <= 0:
            raise ValueError("event_retention and event_trim_interval must be positive")

    @property
    def dev(self) -> bool:
        return self.hostname == "localhost"

    @property
    def service_did(self) -> str:
        return f"did:web:{self.hostname}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pds.sqlite"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    def resolve_jwt_secret(self) -> str:
        """The configured secret, or the one persisted under the data directory (created on first use)."""
        if self.jwt_secret:
            return self.jwt_secret
        self.jwt_secret = load_or_create_secret(self.data_dir / "jwt_secret")
        return self.jwt_secret
