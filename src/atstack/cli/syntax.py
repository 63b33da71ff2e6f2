"""`atstack syntax`: Identifier syntax checks.

``atstack syntax check KIND VALUE`` prints ``valid <kind>`` (plus decoded parts for some kinds) and exits 0, or
prints one line ``invalid <kind>: <reason>`` on stderr and exits 1. ``datetime`` and ``language`` are checked at
the strict level records are held to. Values that start with ``-`` can follow ``--``.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable

import click

from atstack.core import syntax as sx
from atstack.core.tid import tid_clock_id, tid_to_timestamp_us

_CHECKS: dict[str, Callable[[str], None]] = {
    "handle": sx.ensure_valid_handle,
    "did": sx.ensure_valid_did,
    "nsid": sx.ensure_valid_nsid,
    "nsid-glob": sx.ensure_valid_nsid_glob,
    "tid": sx.ensure_valid_tid,
    "rkey": sx.ensure_valid_record_key,
    "at-uri": sx.ensure_valid_at_uri,
    "at-identifier": sx.ensure_valid_at_identifier,
    "datetime": sx.ensure_valid_datetime_strict,
    "language": sx.ensure_valid_language_strict,
    "uri": sx.ensure_valid_uri,
    "cid": sx.ensure_valid_cid,
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@click.group()
def syntax() -> None:
    """Identifier syntax checks."""


def _details(kind: str, value: str) -> list[str]:
    """Extra lines printed after ``valid <kind>``: decoded parts and non-syntax caveats."""
    if kind == "tid":
        us = tid_to_timestamp_us(value)
        try:
            when = (_EPOCH + dt.timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")
        except OverflowError:
            when = "beyond year 9999"
        return [f"timestamp: {when} ({us} µs since epoch)", f"clock id: {tid_clock_id(value)}"]
    if kind == "at-uri":
        uri = sx.parse_at_uri(value)
        return [
            f"authority: {uri.authority}",
            f"collection: {uri.collection if uri.collection is not None else '-'}",
            f"rkey: {uri.rkey if uri.rkey is not None else '-'}",
        ]
    if kind == "handle" and sx.is_disallowed_tld(value):
        tld = value.rpartition(".")[2].lower()
        scope = "outside development" if tld == "test" else "by atproto services"
        return [f"note: TLD .{tld} is syntax-valid but cannot be registered or resolved {scope}"]
    if kind == "did":
        try:
            sx.ensure_supported_did(value)
        except sx.InvalidSyntax as exc:
            return [f"note: {exc}"]
    return []


@syntax.command("check", context_settings={"ignore_unknown_options": True})
@click.argument("kind", type=click.Choice(list(_CHECKS)), metavar="KIND")
@click.argument("value")
def check(kind: str, value: str) -> None:
    """Check VALUE against KIND: handle, did, nsid, nsid-glob, tid, rkey, at-uri, at-identifier, datetime,
    language, uri or cid.
    """
    try:
        _CHECKS[kind](value)
    except sx.InvalidSyntax as exc:
        reason = " ".join(str(exc).split())
        click.echo(f"invalid {kind}: {reason}", err=True)
        sys.exit(1)
    click.echo(f"valid {kind}")
    for line in _details(kind, value):
        click.echo(line)
