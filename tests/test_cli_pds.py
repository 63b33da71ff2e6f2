"""`atstack pds` options that are checked before anything starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from atstack.cli import main


def test_event_retention_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pds", "--data-dir", str(tmp_path), "--event-retention-hours", "0"])
    assert result.exit_code == 2
    assert "--event-retention-hours" in result.output
    assert not any(tmp_path.iterdir())  # nothing was started or created


def test_event_retention_is_listed_with_its_default() -> None:
    result = CliRunner().invoke(main, ["pds", "--help"])
    assert result.exit_code == 0
    assert "--event-retention-hours" in result.output and "72.0" in result.output
