"""`atstack bench`: benchmarks that print throughput, latency percentiles and peak RSS."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks that print throughput, latency percentiles and peak RSS."""


@bench.command("core")
@click.option("--records", default=100_000, show_default=True, help="Records in the benchmark repository.")
@click.option("--seconds", default=1.0, show_default=True, help="Measuring time per figure.")
def core(records: int, seconds: float) -> None:
    """DRISL, signatures, CAR, MST and repository operations on one core."""
    from atstack.bench.core import run

    run(records=records, seconds=seconds)


@bench.command("pds")
@click.option("--url", default=None, help="A running PDS to measure (default: start a local atstack stack).")
@click.option(
    "--ref-url", default=None, help="A second PDS (e.g. the TypeScript reference) run with the same workload."
)
@click.option(
    "--admin-password", default=None, envvar="ATSTACK_ADMIN_PASSWORD", help="Admin password of --url."
)
@click.option(
    "--ref-admin-password", default=None, help="Admin password of --ref-url (default: --admin-password)."
)
@click.option(
    "--invite-code", default=None, help="Invite code for --url (default: made via the admin API if needed)."
)
@click.option("--ref-invite-code", default=None, help="Invite code for --ref-url.")
@click.option("--server-pid", default=None, type=int, help="PID of the --url server, for its RSS.")
@click.option("--ref-pid", default=None, type=int, help="PID of the --ref-url server, for its RSS.")
@click.option(
    "--clients", default=4, show_default=True, help="Concurrent clients, one request in flight each."
)
@click.option(
    "--seconds", default=10.0, show_default=True, help="Length of each phase (writes, reads, firehose)."
)
@click.option("--accounts", default=1000, show_default=True, help="Accounts created before the writes.")
@click.option("--account-concurrency", default=8, show_default=True, help="createAccount calls in flight.")
@click.option(
    "--write-accounts",
    default=0,
    show_default=True,
    help="Spread the writes over the first K accounts (0: all of them; --clients: one account per client).",
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    help="Repeat the write and read phases, alternating the targets (figures pooled).",
)
@click.option("--firehose-rate", default=20.0, show_default=True, help="Writes/s during the firehose phase.")
def pds(
    url: str | None,
    ref_url: str | None,
    admin_password: str | None,
    ref_admin_password: str | None,
    invite_code: str | None,
    ref_invite_code: str | None,
    server_pid: int | None,
    ref_pid: int | None,
    clients: int,
    seconds: float,
    accounts: int,
    account_concurrency: int,
    firehose_rate: float,
    write_accounts: int,
    rounds: int,
) -> None:
    """createRecord writes/s and latency, getRecord reads/s, firehose delivery latency and server RSS."""
    from atstack.bench.pds import BenchError, Target, run

    if clients < 1 or accounts < 1 or rounds < 1 or seconds <= 0 or firehose_rate <= 0:
        raise click.BadParameter(
            "--clients, --accounts, --rounds, --seconds and --firehose-rate must be positive"
        )
    ref = None
    if ref_url is not None:
        ref = Target("reference", ref_url, ref_admin_password or admin_password, ref_invite_code, ref_pid)
    try:
        run(
            url=url,
            ref=ref,
            admin_password=admin_password,
            invite_code=invite_code,
            server_pid=server_pid,
            clients=clients,
            seconds=seconds,
            accounts=accounts,
            account_concurrency=account_concurrency,
            firehose_rate=firehose_rate,
            write_accounts=write_accounts,
            rounds=rounds,
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None


@bench.command("relay")
@click.option("--dids", default=1000, show_default=True, help="Repositories in the generated stream.")
@click.option("--events", default=20_000, show_default=True, help="Commits replayed for the ingest figure.")
@click.option("--rate", default=2000.0, show_default=True, help="Events/s for the live latency phase.")
@click.option("--seconds", default=5.0, show_default=True, help="Length of the live phase.")
@click.option("--consumers", default=100, show_default=True, help="Firehose consumers during the live phase.")
def relay(dids: int, events: int, rate: float, seconds: float, consumers: int) -> None:
    """Validated #commit events/s, added latency p50/p99, peak RSS and fan-out of the relay."""
    from atstack.bench.relay import run

    run(dids=dids, events=events, rate=rate, seconds=seconds, consumers=consumers)


@bench.command("jetstream")
@click.option("--ingest-events", default=20_000, show_default=True, help="Commits converted for ingest.")
@click.option("--subscribers", default=500, show_default=True, help="Subscribers during fan-out.")
@click.option("--rate", default=2000.0, show_default=True, help="Upstream events/s during fan-out.")
@click.option("--seconds", default=10.0, show_default=True, help="Length of the fan-out phase.")
def jetstream(ingest_events: int, subscribers: int, rate: float, seconds: float) -> None:
    """Ingest events/s per core, fan-out to many subscribers, p99 latency, CPU, RSS, compression."""
    from atstack.bench.jetstream import run

    run(ingest_events=ingest_events, subscribers=subscribers, rate=int(rate), seconds=seconds)
