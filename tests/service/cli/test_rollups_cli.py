"""`reeltrace rollups rebuild`: recomputes the rollups, refuses what would erase history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


def test_rebuild_reports_what_it_recomputed(cli: Cli) -> None:
    """Without retention, a rebuild covers every request and says how many it counted."""
    result = cli.run("rollups", "rebuild")
    assert result.returncode == 0, result.stderr
    assert "rebuilt the rollups for every request: 0 finished requests" in result.stdout


def test_rebuild_since_an_hour_rounds_down(cli: Cli) -> None:
    """--since is rounded down to its hour and printed back."""
    result = cli.run("rollups", "rebuild", "--since", "2026-12-01T10:42:00")
    assert result.returncode == 0, result.stderr
    assert "from 2026-12-01T10:00:00+00:00" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--since", "yesterday"], {}, "--since 'yesterday' is not an ISO 8601 time"),
        (
            ["--since", (datetime.now(UTC) - timedelta(days=40)).isoformat()],
            {"REQUEST_RETENTION_DAYS": "30"},
            "is before the retention horizon",
        ),
    ],
)
def test_rebuild_refuses_bad_since_in_one_line(
    cli: Cli, args: list[str], expected: str, env: dict[str, str]
) -> None:
    """A --since that is not a time, or before the retention horizon, is a one-line error, not a traceback."""
    result = cli.run("rollups", "rebuild", *args, **env)
    assert result.returncode == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
