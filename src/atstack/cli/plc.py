"""`atstack plc`: run a did:plc directory (plc.directory-compatible HTTP API)."""

from __future__ import annotations

from pathlib import Path

import click

from atstack.plc.config import DEFAULT_PORT, PlcConfig


@click.command("plc")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATSTACK_PLC_DATA_DIR",
    help="Directory for the directory's SQLite database (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATSTACK_PLC_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, envvar="ATSTACK_PLC_PORT")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="ATSTACK_PLC_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def plc(data_dir: Path, host: str, port: int, log_level: str) -> None:
    """Run a did:plc directory (env: ATSTACK_PLC_DATA_DIR, _HOST, _PORT, _LOG_LEVEL)."""
    from atstack.plc.app import create_app
    from atstack.xrpc.logs import configure_logging
    from atstack.xrpc.service import run_service

    configure_logging("plc", level=log_level.upper())
    config = PlcConfig(data_dir=data_dir, host=host, port=port)
    run_service(create_app(config), host, port, name="plc")
