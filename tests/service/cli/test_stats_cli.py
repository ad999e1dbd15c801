"""`reeltrace stats ...` written to a pipe: every number whole, one table row per line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.progress import Progress

from analytics import queries
from analytics.queries import Rows
from analytics.reader import Snapshot, open_snapshot
from service.cli.analytics import PROMPT_WIDTH, _cell, _clip, _RowRate
from service.db.urls import libpq_dsn
from tests.analytics.datagen import generate
from tests.service.cli.conftest import Cli
from tests.service.cli.piped import run_piped, wrapped_rows

pytestmark = pytest.mark.slow

MS_COLUMNS = {"p50_ms", "p95_ms", "p99_ms", "avg_ms"}


@pytest.fixture
def snapshots(cli: Cli, database_url: str, tmp_path: Path) -> Path:
    generate(libpq_dsn(database_url), 300, span_days=30, guilds=2)
    out = tmp_path / "snap"
    result = cli.run("export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("command", "query"),
    [
        pytest.param("global", lambda snap: queries.global_latency(snap, None), id="global"),
        pytest.param("stages", queries.stage_stats, id="stages"),
    ],
)
def test_stats_piped_prints_every_number_whole(
    cli: Cli, snapshots: Path, command: str, query: Callable[[Snapshot], Rows]
) -> None:
    """`stats global | cat` and `stats stages | cat`: no row wraps, no value is cut or split."""
    result = run_piped(cli, "stats", command, "--snapshots", str(snapshots))
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert wrapped_rows(result.stdout) == [], result.stdout
    with open_snapshot(snapshots) as snap:
        rows = query(snap)
    assert rows.rows
    lines = result.stdout.splitlines()
    for row in rows.rows:
        cells = [_cell(v, name in MS_COLUMNS) for name, v in zip(rows.columns, row, strict=True)]
        # Each row of the result is one line of the table, holding every value whole.
        assert any(all(f" {cell} " in line for cell in cells) for line in lines), (cells, result.stdout)


def test_a_long_prompt_is_shown_cut_and_marked() -> None:
    """Top prompts longer than the column are cut with an ellipsis; shorter ones are shown whole."""
    long = "a fox " * 30
    assert _clip(long) == long[: PROMPT_WIDTH - 1] + "…"
    assert len(_clip(long)) == PROMPT_WIDTH
    assert _clip("a fox") == "a fox"


def test_a_table_read_in_one_batch_shows_its_rate() -> None:
    """A table whose rows all arrive at once still shows rows/s (rich has no speed sample for it)."""
    progress = Progress()
    task = progress.add_task("video_requests", total=1000)
    time.sleep(0.05)
    progress.advance(task, 1000)
    rate = int(_RowRate().render(progress.tasks[0]).plain.split()[0].replace(",", ""))
    assert 1000 <= rate <= 1000 / 0.05
