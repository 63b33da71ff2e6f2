"""The ``atstack`` command line: one group, one module per command family."""

from __future__ import annotations

import click

from atstack.cli.bench import bench
from atstack.cli.jetstream import jetstream
from atstack.cli.keys import key
from atstack.cli.pds import pds
from atstack.cli.plc import plc
from atstack.cli.relay import relay
from atstack.cli.repo import repo
from atstack.cli.syntax import syntax
from atstack.cli.up import up


@click.group()
@click.version_option(package_name="atstack")
def main() -> None:
    """atstack: AT Protocol (Bluesky) network infrastructure."""


main.add_command(key)
main.add_command(repo)
main.add_command(syntax)
main.add_command(bench)
main.add_command(plc)
main.add_command(pds)
main.add_command(jetstream)
main.add_command(relay)
main.add_command(up)
