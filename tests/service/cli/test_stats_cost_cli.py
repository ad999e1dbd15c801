"""`reeltrace stats cost --by ...` over a snapshot, as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.db.urls import libpq_dsn
from tests.analytics.conftest import pg_exec
from tests.analytics.datagen import generate
from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


@pytest.fixture
def snapshots(cli: Cli, database_url: str, tmp_path: Path) -> Path:
    """A snapshot of requests of which the completed ones cost 0.10 USD per second."""
    dsn = libpq_dsn(database_url)
    generate(dsn, 120, span_days=5, guilds=2)
    pg_exec(
        dsn,
        "UPDATE video_requests SET billable_seconds = duration_seconds, cost_usd = duration_seconds * 0.1"
        " WHERE status = 'completed'",
    )
    out = tmp_path / "snap"
    assert cli.run("export", "--out", str(out)).returncode == 0
    return out


@pytest.mark.parametrize(("by", "column"), [("guild", "guild id"), ("user", "user id"), ("day", "day")])
def test_stats_cost_groups_by_what_is_asked(cli: Cli, snapshots: Path, by: str, column: str) -> None:
    """`stats cost --by X` prints a table keyed by X, with cost, billed seconds and unpriced requests."""
    result = cli.run("stats", "cost", "--by", by, "--snapshots", str(snapshots))
    assert result.returncode == 0, result.stderr
    assert f"cost by {by} (USD)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "cost usd" in line)
    assert column in header
    assert "billable seconds" in header
    assert "unpriced" in header


def test_stats_cost_refuses_an_unknown_grouping(cli: Cli, snapshots: Path) -> None:
    """An unknown --by is refused naming the choices, without a traceback."""
    result = cli.run("stats", "cost", "--by", "planet", "--snapshots", str(snapshots))
    assert result.returncode == 2
    assert "planet" in result.stderr
    assert "Traceback" not in result.stderr
