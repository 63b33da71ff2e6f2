"""`atstack up`: the whole stack in one process on loopback — PLC, PDS, relay and Jetstream (the indexer as it lands).

Ports follow DESIGN "Command line and ports": ``--port-base N`` puts PLC on N, PDS on N+1, relay on N+2,
Jetstream on N+3 and the indexer on N+4. State lives under ``--data-dir`` (default ``./data``), one
sub-directory per service, so a second ``atstack up`` picks up where the first stopped.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

EXAMPLE = """\
  Try it (creates an account and a post):
    PDS={pds}
    TOKEN=$(curl -s -X POST $PDS/xrpc/com.atproto.server.createAccount -H 'content-type: application/json' \\
      -d '{{"handle":"alice.test","email":"alice@example.com","password":"change-me-123"}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessJwt"])')
    curl -s -X POST $PDS/xrpc/com.atproto.repo.createRecord -H "authorization: Bearer $TOKEN" \\
      -H 'content-type: application/json' -d '{{"repo":"alice.test","collection":"app.bsky.feed.post",
      "record":{{"$type":"app.bsky.feed.post","text":"hello from atstack","createdAt":"2026-01-01T00:00:00Z"}}}}'
    curl -s "$PDS/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post"
"""


def _admin_password(data_dir: Path, given: str | None) -> tuple[str, str]:
    """The admin password and where it comes from (generated once into the data directory if not given)."""
    if given:
        return given, "from --admin-password / ATSTACK_ADMIN_PASSWORD"
    path = data_dir / "admin_password"
    if path.exists():
        return path.read_text().strip(), f"in {path}"
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, f"in {path}"


@click.command("up")
@click.option(
    "--data-dir",
    default=Path("data"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATSTACK_DATA_DIR",
)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATSTACK_HOST")
@click.option("--port-base", default=2582, show_default=True, type=int, envvar="ATSTACK_PORT_BASE")
@click.option("--admin-password", default=None, envvar="ATSTACK_ADMIN_PASSWORD")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    envvar="ATSTACK_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def up(data_dir: Path, host: str, port_base: int, admin_password: str | None, log_level: str) -> None:
    """Run PLC + PDS + relay + Jetstream together on loopback with SQLite under DATA_DIR; Ctrl-C stops everything."""
    from atstack.jetstream import JetstreamConfig
    from atstack.jetstream import create_app as create_jetstream
    from atstack.pds.app import create_app as create_pds
    from atstack.pds.config import PdsConfig
    from atstack.plc.app import create_app as create_plc
    from atstack.plc.config import PlcConfig
    from atstack.relay import RelayConfig
    from atstack.relay import create_app as create_relay
    from atstack.xrpc.logs import configure_logging
    from atstack.xrpc.service import ServiceSpec, run, serve_apps

    configure_logging("up", level=log_level.upper())
    data_dir = data_dir.resolve()
    password, where = _admin_password(data_dir, admin_password)
    plc_port, pds_port, relay_port = port_base, port_base + 1, port_base + 2
    plc_url = f"http://{host}:{plc_port}"
    plc_app = create_plc(PlcConfig(data_dir=data_dir / "plc", host=host, port=plc_port))
    pds_config = PdsConfig(
        data_dir=data_dir / "pds",
        hostname="localhost",
        host=host,
        port=pds_port,
        plc_url=plc_url,
        admin_password=password,
        crawlers=(f"http://{host}:{relay_port}",),
    )
    pds_app = create_pds(pds_config)
    relay_app = create_relay(
        RelayConfig(
            data_dir=data_dir / "relay",
            host=host,
            port=relay_port,
            plc_url=plc_url,
            admin_password=password,
            crawl=(f"localhost:{pds_port}",),
            allow_private_hosts=True,  # everything here is on loopback
            tune_gc=False,  # the relay shares this process with the other services
        )
    )
    jetstream_port = port_base + 3
    jetstream_app = create_jetstream(
        JetstreamConfig(
            data_dir=data_dir / "jetstream",
            upstream=f"ws://{host}:{relay_port}",
            host=host,
            port=jetstream_port,
        )
    )
    specs = [
        ServiceSpec(plc_app, host, plc_port, "plc"),
        ServiceSpec(pds_app, host, pds_port, "pds"),
        ServiceSpec(relay_app, host, relay_port, "relay"),
        ServiceSpec(jetstream_app, host, jetstream_port, "jetstream"),
    ]

    def ready(started: list) -> None:
        click.echo(f"atstack is up (data in {data_dir}):")
        for spec, url in started:
            click.echo(f"  {spec.name:<10} {url}")
        click.echo(f"  firehose   ws://{host}:{relay_port}/xrpc/com.atproto.sync.subscribeRepos (relay)")
        click.echo(
            f"  jetstream  ws://{host}:{jetstream_port}/subscribe?wantedCollections=app.bsky.feed.post"
        )
        click.echo(f"  admin      user 'admin', password {where}")
        click.echo(EXAMPLE.format(pds=pds_config.public_url))
        click.echo("Ctrl-C stops everything.", err=False)

    run(serve_apps(specs, on_ready=ready))
