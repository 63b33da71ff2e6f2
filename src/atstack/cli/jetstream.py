"""`atstack jetstream`: serve the firehose of one upstream as Jetstream JSON (v1 ``/subscribe`` + v2)."""

from __future__ import annotations

from pathlib import Path

import click

from atstack.jetstream.config import DEFAULT_PORT, DEFAULT_RETENTION_HOURS


@click.command("jetstream")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATSTACK_JETSTREAM_DATA_DIR",
    help="Directory for the event store (created if missing).",
)
@click.option(
    "--upstream",
    envvar="ATSTACK_JETSTREAM_UPSTREAM",
    help="subscribeRepos source: ws://host:port (a relay or PDS) or the full URL. Omit to serve stored events only.",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATSTACK_JETSTREAM_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, envvar="ATSTACK_JETSTREAM_PORT")
@click.option(
    "--retention-hours",
    default=DEFAULT_RETENTION_HOURS,
    show_default=True,
    type=float,
    envvar="ATSTACK_JETSTREAM_RETENTION_HOURS",
    help="How long events stay replayable with a cursor.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="ATSTACK_JETSTREAM_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def jetstream(
    data_dir: Path, upstream: str | None, host: str, port: int, retention_hours: float, log_level: str
) -> None:
    """Run Jetstream (env: ATSTACK_JETSTREAM_DATA_DIR, _UPSTREAM, _HOST, _PORT, _RETENTION_HOURS, _LOG_LEVEL)."""
    from atstack.jetstream.app import create_app
    from atstack.jetstream.config import JetstreamConfig
    from atstack.xrpc.logs import configure_logging
    from atstack.xrpc.service import run_service

    configure_logging("jetstream", level=log_level.upper())
    if upstream:
        from atstack.jetstream.consumer import subscribe_repos_url

        try:
            subscribe_repos_url(upstream)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--upstream") from None
    config = JetstreamConfig(
        data_dir=data_dir, upstream=upstream, host=host, port=port, retention_hours=retention_hours
    )
    run_service(create_app(config), host, port, name="jetstream")
