"""`reeltrace export` and `reeltrace stats ...`: snapshots written and read from the command line."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics.snapshot import read_manifest
from service.cli.main import app
from service.db.urls import libpq_dsn
from telemetry.logging import configure_logging
from tests.analytics.datagen import generate

runner = CliRunner()


@pytest.fixture(autouse=True)
def _logging_outlives_the_runner() -> Iterator[None]:
    """A command run by CliRunner points logging at the runner's stream, closed once the command
    ends; later tests in this process must not log into it."""
    yield
    configure_logging("warning", "json", stream=sys.stderr)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REELTRACE_DATA_DIR": str(tmp_path / "data"),
        "REELTRACE_LOG_LEVEL": "warning",
        "COLUMNS": "200",
    }


@pytest.fixture
def snapshots(env: dict[str, str], database_url: str, tmp_path: Path) -> Path:
    """Generated requests exported with `reeltrace export --out`."""
    generate(libpq_dsn(database_url), 300, span_days=30, guilds=2)
    out = tmp_path / "snap"
    result = runner.invoke(app, ["export", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    return out


def test_export_writes_a_snapshot_and_summarises_it(snapshots: Path, env: dict[str, str]) -> None:
    """`export` publishes a snapshot, and a second run reads only the changes."""
    assert read_manifest(snapshots).rows("video_requests") == 300
    result = runner.invoke(app, ["export", "--out", str(snapshots)], env=env)
    assert result.exit_code == 0, result.output
    assert "snapshot v00000002" in result.stdout
    assert "changes since" in result.stdout


def test_export_defaults_to_the_configured_directory(env: dict[str, str], tmp_path: Path) -> None:
    """Without --out the snapshot goes to REELTRACE_EXPORT_DIR."""
    target = tmp_path / "configured"
    result = runner.invoke(app, ["export"], env={**env, "REELTRACE_EXPORT_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert read_manifest(target).rows("video_requests") == 0


def test_stats_guild_prints_buckets_and_top_prompts(snapshots: Path, env: dict[str, str]) -> None:
    """`stats guild <id> --bucket week` prints per-week counts and the top prompts as tables."""
    result = runner.invoke(
        app, ["stats", "guild", "guild_0", "--bucket", "week", "--snapshots", str(snapshots)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "guild guild_0, per week" in result.stdout
    assert "top 10 prompts per week" in result.stdout
    assert "completed" in result.stdout


@pytest.mark.parametrize(
    ("command", "title"),
    [
        ("global", "latency and failure rate"),
        ("stages", "stages"),
        ("retries", "attempts per success"),
        ("users", "requests per user"),
    ],
)
def test_stats_commands_print_tables(snapshots: Path, env: dict[str, str], command: str, title: str) -> None:
    """Each `stats` command prints its table from the snapshot."""
    result = runner.invoke(app, ["stats", command, "--snapshots", str(snapshots)], env=env)
    assert result.exit_code == 0, result.output
    assert title in result.stdout
    assert "watermark" in result.stdout


def test_stats_without_a_snapshot_says_to_export(env: dict[str, str], tmp_path: Path) -> None:
    """Querying before any export ends with a message, not a traceback."""
    result = runner.invoke(app, ["stats", "global", "--snapshots", str(tmp_path / "none")], env=env)
    assert result.exit_code == 2
    assert "run `reeltrace export` first" in result.output


def test_a_bad_bucket_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    """`--bucket year` is rejected by name."""
    result = runner.invoke(app, ["stats", "guild", "g", "--bucket", "year"], env=env)
    assert result.exit_code == 2
    assert "--bucket" in result.output


@pytest.mark.parametrize("under", ["", "sub"])
def test_export_to_a_file_is_refused_in_one_line(env: dict[str, str], tmp_path: Path, under: str) -> None:
    """An --out that is a file (or lies under one) ends with a message naming it, not a traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    target = afile / under if under else afile
    result = runner.invoke(app, ["export", "--out", str(target)], env=env)
    assert result.exit_code == 2, result.output
    assert f"error: cannot write a snapshot to {target}" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_export_full_rereads_every_row(snapshots: Path, env: dict[str, str]) -> None:
    """After an export, a plain one reads only what changed, while `export --full` reads every row again."""
    incremental = runner.invoke(app, ["export", "--out", str(snapshots)], env=env)
    assert incremental.exit_code == 0, incremental.output
    assert read_manifest(snapshots).delta_rows["video_requests"] < 300
    full = runner.invoke(app, ["export", "--full", "--out", str(snapshots)], env=env)
    assert full.exit_code == 0, full.output
    manifest = read_manifest(snapshots)
    assert manifest.window_start is None
    assert manifest.delta_rows["video_requests"] == 300
    assert "\nfull; watermark" in full.stdout


def _streams(root: Path, table: str) -> set[str]:
    """The streams (`-t<n>` in the file names) that wrote a table's files."""
    return {re.sub(r".*-(t\d+).*", r"\1", f.path) for f in read_manifest(root).tables[table].files()}


@pytest.mark.parametrize("workers", [1, 3])
def test_export_workers_sets_the_parallel_streams(
    env: dict[str, str], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """`export --full --workers N` reads a large table in N streams (here every table counts as large)."""
    generate(libpq_dsn(database_url), 300, span_days=3)
    monkeypatch.setattr("analytics.export.SHARD_MIN_ROWS", 1)
    out = tmp_path / "snap"
    result = runner.invoke(app, ["export", "--full", "--workers", str(workers), "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert len(_streams(out, "video_requests")) == workers
    assert read_manifest(out).rows("video_requests") == 300


def test_export_workers_out_of_range_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    """`--workers 0` is refused, naming the option."""
    result = runner.invoke(app, ["export", "--workers", "0", "--out", str(tmp_path / "snap")], env=env)
    assert result.exit_code == 2
    assert "--workers" in result.output
