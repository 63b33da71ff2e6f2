"""`atstack pds`: run a Personal Data Server."""

from __future__ import annotations

from pathlib import Path

import click

from atstack.pds.config import DEFAULT_BLOB_LIMIT, DEFAULT_EVENT_RETENTION, DEFAULT_PORT


@click.command("pds")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATSTACK_PDS_DATA_DIR",
    help="Directory for the database, blobs and the JWT secret (created if missing).",
)
@click.option(
    "--hostname",
    default="localhost",
    show_default=True,
    envvar="ATSTACK_PDS_HOSTNAME",
    help="Public host name; 'localhost' is development mode (.test handles, http).",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATSTACK_PDS_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, envvar="ATSTACK_PDS_PORT")
@click.option(
    "--public-url",
    default=None,
    envvar="ATSTACK_PDS_PUBLIC_URL",
    help="URL clients reach us at (default http://localhost:<port> or https://<hostname>).",
)
@click.option("--plc-url", default="https://plc.directory", show_default=True, envvar="ATSTACK_PDS_PLC_URL")
@click.option(
    "--admin-password",
    default=None,
    envvar=["ATSTACK_PDS_ADMIN_PASSWORD", "ATSTACK_ADMIN_PASSWORD"],
    help="Password of HTTP Basic 'admin' auth (env ATSTACK_ADMIN_PASSWORD).",
)
@click.option(
    "--jwt-secret",
    default=None,
    envvar="ATSTACK_PDS_JWT_SECRET",
    help="Session token secret (default: generated once into <data-dir>/jwt_secret).",
)
@click.option(
    "--handle-domain",
    "handle_domains",
    multiple=True,
    envvar="ATSTACK_PDS_HANDLE_DOMAINS",
    help="Handle suffix accounts may register under (repeatable; default .test or .<hostname>).",
)
@click.option("--invite-required/--no-invite-required", default=False, envvar="ATSTACK_PDS_INVITE_REQUIRED")
@click.option(
    "--blob-upload-limit",
    default=DEFAULT_BLOB_LIMIT,
    show_default=True,
    type=int,
    envvar="ATSTACK_PDS_BLOB_UPLOAD_LIMIT",
)
@click.option(
    "--crawl",
    "crawlers",
    multiple=True,
    envvar="ATSTACK_PDS_CRAWLERS",
    help="Relay URL to send requestCrawl to (repeatable).",
)
@click.option(
    "--lexicon-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    envvar=["ATSTACK_PDS_LEXICON_DIR", "ATSTACK_LEXICON_DIR"],
    help="Directory of lexicon JSON files used to validate records.",
)
@click.option("--rate-limits/--no-rate-limits", default=True, envvar="ATSTACK_PDS_RATE_LIMITS")
@click.option(
    "--event-retention-hours",
    default=DEFAULT_EVENT_RETENTION / 3600,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    envvar="ATSTACK_PDS_EVENT_RETENTION_HOURS",
    help="How long subscribeRepos can replay; older events are trimmed.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="ATSTACK_PDS_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def pds(
    data_dir: Path,
    hostname: str,
    host: str,
    port: int,
    public_url: str | None,
    plc_url: str,
    admin_password: str | None,
    jwt_secret: str | None,
    handle_domains: tuple[str, ...],
    invite_required: bool,
    blob_upload_limit: int,
    crawlers: tuple[str, ...],
    lexicon_dir: Path | None,
    rate_limits: bool,
    event_retention_hours: float,
    log_level: str,
) -> None:
    """Run a Personal Data Server (env: ATSTACK_PDS_<OPTION>, e.g. ATSTACK_PDS_DATA_DIR)."""
    from atstack.pds.app import create_app
    from atstack.pds.config import PdsConfig
    from atstack.xrpc.logs import configure_logging
    from atstack.xrpc.service import run_service

    configure_logging("pds", level=log_level.upper())
    config = PdsConfig(
        data_dir=data_dir,
        hostname=hostname,
        host=host,
        port=port,
        public_url=public_url,
        plc_url=plc_url,
        admin_password=admin_password,
        jwt_secret=jwt_secret,
        service_handle_domains=tuple(handle_domains) or None,
        invite_required=invite_required,
        blob_upload_limit=blob_upload_limit,
        crawlers=tuple(crawlers),
        lexicon_dir=lexicon_dir,
        rate_limits=rate_limits,
        event_retention=event_retention_hours * 3600,
    )
    run_service(create_app(config), host, port, name="pds")
