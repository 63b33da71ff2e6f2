"""`atstack relay`: run a relay (crawl hosts, validate every commit, serve one firehose)."""

from __future__ import annotations

from pathlib import Path

import click

from atstack.relay.config import DEFAULT_PORT


@click.command("relay")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATSTACK_RELAY_DATA_DIR",
    help="Directory for the relay database (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATSTACK_RELAY_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, envvar="ATSTACK_RELAY_PORT")
@click.option("--plc-url", default="https://plc.directory", show_default=True, envvar="ATSTACK_RELAY_PLC_URL")
@click.option(
    "--admin-password",
    default=None,
    envvar=["ATSTACK_RELAY_ADMIN_PASSWORD", "ATSTACK_ADMIN_PASSWORD"],
    help="Password of HTTP Basic 'admin' auth for /admin/ (env ATSTACK_ADMIN_PASSWORD).",
)
@click.option(
    "--crawl",
    "crawl",
    multiple=True,
    envvar="ATSTACK_RELAY_CRAWL",
    help="Host (hostname or URL) to subscribe to at start (repeatable).",
)
@click.option(
    "--allow-private-hosts/--no-allow-private-hosts",
    default=False,
    envvar="ATSTACK_RELAY_ALLOW_PRIVATE_HOSTS",
    help="Local development: accept localhost/private hosts with ports, dial them over ws://.",
)
@click.option(
    "--backfill-new-hosts/--no-backfill-new-hosts",
    default=True,
    envvar="ATSTACK_RELAY_BACKFILL_NEW_HOSTS",
    help="Start a new host at cursor 0 (its retained window) rather than at its live tip.",
)
@click.option(
    "--retention-hours", default=72.0, show_default=True, type=float, envvar="ATSTACK_RELAY_RETENTION_HOURS"
)
@click.option(
    "--trusted-host",
    "trusted_hosts",
    multiple=True,
    envvar="ATSTACK_RELAY_TRUSTED_HOSTS",
    help="Host exempt from the default account and rate limits (repeatable).",
)
@click.option(
    "--default-account-limit",
    default=100_000,
    show_default=True,
    type=int,
    envvar="ATSTACK_RELAY_DEFAULT_ACCOUNT_LIMIT",
)
@click.option(
    "--default-events-per-second",
    default=1000.0,
    show_default=True,
    type=float,
    envvar="ATSTACK_RELAY_DEFAULT_EVENTS_PER_SECOND",
)
@click.option(
    "--reconnect-min-delay",
    default=1.0,
    show_default=True,
    type=float,
    envvar="ATSTACK_RELAY_RECONNECT_MIN_DELAY",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="ATSTACK_RELAY_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def relay(
    data_dir: Path,
    host: str,
    port: int,
    plc_url: str,
    admin_password: str | None,
    crawl: tuple[str, ...],
    allow_private_hosts: bool,
    backfill_new_hosts: bool,
    retention_hours: float,
    trusted_hosts: tuple[str, ...],
    default_account_limit: int,
    default_events_per_second: float,
    reconnect_min_delay: float,
    log_level: str,
) -> None:
    """Run a relay (env: ATSTACK_RELAY_<OPTION>, e.g. ATSTACK_RELAY_DATA_DIR)."""
    from atstack.relay.app import create_app
    from atstack.relay.config import RelayConfig
    from atstack.xrpc.logs import configure_logging
    from atstack.xrpc.service import run_service

    configure_logging("relay", level=log_level.upper())
    config = RelayConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        plc_url=plc_url,
        admin_password=admin_password,
        crawl=crawl,
        allow_private_hosts=allow_private_hosts,
        backfill_new_hosts=backfill_new_hosts,
        retention_hours=retention_hours,
        trusted_hosts=trusted_hosts,
        default_account_limit=default_account_limit,
        default_events_per_second=default_events_per_second,
        reconnect_min_delay=reconnect_min_delay,
    )
    run_service(create_app(config), host, port, name="relay")
