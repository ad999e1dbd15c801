"""Analytics commands: `export` writes a snapshot, `stats ...` queries the latest one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from analytics.defaults import DEFAULT_WORKERS, STATUSES, TOP_PROMPTS
from analytics.errors import AnalyticsError, SnapshotNotFound
from service.cli.common import console, database_settings, fail, one_shot_settings, out
from service.db.server import resolve_database_url
from service.db.urls import libpq_dsn

if TYPE_CHECKING:
    from analytics.export import ExportResult
    from analytics.queries import Rows
    from analytics.reader import Snapshot

# DuckDB and pyarrow are imported inside the commands that use them, so that the
# other commands (and `--help`) start without loading them.

stats_app = typer.Typer(
    name="stats",
    help="Guild, prompt, latency and cost analytics over the latest snapshot (DuckDB).",
    no_args_is_help=True,
)


class BucketChoice(StrEnum):
    day = "day"
    week = "week"
    month = "month"


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.add_typer(stats_app)


_DIR_HELP = "Snapshot directory (default: REELTRACE_EXPORT_DIR or <data dir>/snapshots)."
SnapshotsOption = Annotated[Path | None, typer.Option("--snapshots", help=_DIR_HELP)]


# --- export ------------------------------------------------------------------------


class _RowRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        # rich estimates speed from the last samples only while a task runs (a table read
        # in one batch never has two), so fall back to the average over the task's time.
        speed = task.finished_speed or task.speed
        took = task.finished_time if task.finished else task.elapsed
        if speed is None and took:
            speed = task.completed / took
        return Text(f"{speed or 0:>10,.0f} rows/s", style="progress.data.speed")


class _ProgressObserver:
    """Draws one bar per table from what the export reports (from its worker threads)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._phase = progress.add_task("reading", total=None, visible=False)

    def table_started(self, table: str, total_rows: int) -> None:
        self._tasks[table] = self._progress.add_task(table, total=total_rows)

    def rows_exported(self, table: str, rows: int) -> None:
        self._progress.advance(self._tasks[table], rows)

    def phase(self, name: str) -> None:
        if name != "reading":
            self._progress.update(self._phase, description=name, visible=True)


def export(
    out_dir: Annotated[Path | None, typer.Option("--out", help=_DIR_HELP)] = None,
    full: bool = typer.Option(
        False, "--full", help="Re-read every row, not only those changed since the last export."
    ),
    workers: int = typer.Option(DEFAULT_WORKERS, min=1, max=16, help="Parallel streams out of PostgreSQL."),
) -> None:
    """Export requests, stages and events to Parquet (incremental, atomic, partitioned by day)."""
    settings = database_settings()
    root = out_dir or settings.snapshot_dir
    dsn = libpq_dsn(resolve_database_url(settings))
    progress = Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RowRate(),
        TimeElapsedColumn(),
        console=console,
    )
    from analytics.export import export_snapshot

    try:
        with progress:
            result = export_snapshot(
                dsn, root, full=full, workers=workers, observer=_ProgressObserver(progress)
            )
    except AnalyticsError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        # An --out that is a file, or under one, or not writable: one line naming it.
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(root) else ""
        raise fail(f"cannot write a snapshot to {root}{where}: {exc.strerror or exc}") from None
    _print_export(result, root)


def _print_export(result: ExportResult, root: Path) -> None:
    manifest = result.manifest
    table = Table(title=f"snapshot {manifest.version} in {root}")
    for column in ("table", "rows read", "rows in snapshot", "day partitions"):
        table.add_column(column, justify="left" if column == "table" else "right", overflow="fold")
    for name, files in manifest.tables.items():
        table.add_row(
            name, f"{result.delta_rows.get(name, 0):,}", f"{files.rows:,}", f"{len(files.partitions):,}"
        )
    out.print(table)
    kind = "full" if manifest.window_start is None else f"changes since {_fmt(manifest.window_start)}"
    out.print(
        f"{kind}; watermark {_fmt(manifest.watermark)}; {result.purged_requests} deleted requests removed; "
        f"{result.rows_per_second:,.0f} rows/s read, {result.total_seconds:.1f} s in all"
    )


# --- stats -------------------------------------------------------------------------


@contextmanager
def _snapshot(directory: Path | None) -> Iterator[Snapshot]:
    from analytics.reader import open_snapshot

    root = directory or one_shot_settings().snapshot_dir
    try:
        with open_snapshot(root) as snap:
            out.print(
                f"[dim]snapshot {snap.info.version}, watermark {_fmt(snap.info.watermark)} "
                f"({_age(snap.info.age_seconds())} old)[/]"
            )
            yield snap
    except SnapshotNotFound as exc:
        raise fail(str(exc)) from None
    except AnalyticsError as exc:
        raise fail(str(exc)) from None


@stats_app.command("guild")
def stats_guild(
    guild_id: str = typer.Argument(..., help="The guild (Discord server) ID."),
    bucket: Annotated[BucketChoice, typer.Option("--bucket", help="Time bucket.")] = BucketChoice.day,
    top: int = typer.Option(TOP_PROMPTS, min=1, max=100, help="Prompts listed per bucket."),
    snapshots: SnapshotsOption = None,
) -> None:
    """Per bucket: requests by status, average completed duration and the top prompts."""
    from analytics import queries

    with _snapshot(snapshots) as snap:
        stats = queries.guild_stats(snap, guild_id, bucket.value, top=top)
    if not stats.buckets:
        out.print(f"guild {guild_id} has no requests in this snapshot")
        return
    counts = Table(title=f"guild {guild_id}, per {bucket.value}")
    counts.add_column(bucket.value, overflow="fold")
    for column in ("total", *STATUSES, "avg completed (s)"):
        counts.add_column(column, justify="right", overflow="fold")
    prompts = Table(title=f"top {top} prompts per {bucket.value}")
    prompts.add_column(bucket.value, overflow="fold")
    prompts.add_column("#", justify="right", overflow="fold")
    prompts.add_column("prompt", overflow="fold")
    prompts.add_column("requests", justify="right", overflow="fold")
    for b in stats.buckets:
        avg = b.avg_completed_duration_ms
        counts.add_row(
            str(b.bucket_start),
            f"{b.total:,}",
            *(f"{b.by_status[s]:,}" for s in STATUSES),
            "-" if avg is None else f"{avg / 1000:,.1f}",
        )
        for rank, p in enumerate(b.top_prompts, start=1):
            prompts.add_row(
                str(b.bucket_start) if rank == 1 else "", str(rank), _clip(p.prompt), f"{p.requests:,}"
            )
    out.print(counts)
    out.print(prompts)


@stats_app.command("global")
def stats_global(
    days: int | None = typer.Option(None, min=1, help="Only requests created in the last DAYS days."),
    snapshots: SnapshotsOption = None,
) -> None:
    """Exact P50/P95/P99 of completed durations and the failure rate, per pipeline and aspect ratio."""
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    from analytics import queries

    with _snapshot(snapshots) as snap:
        rows = queries.global_latency(snap, since)
    out.print(
        _rows_table("latency and failure rate", rows, ms_columns={"p50_ms", "p95_ms", "p99_ms", "avg_ms"})
    )


@stats_app.command("stages")
def stats_stages(snapshots: SnapshotsOption = None) -> None:
    """Per pipeline stage: runs, durations, failure rate and share of the pipeline's failures."""
    from analytics import queries

    with _snapshot(snapshots) as snap:
        rows = queries.stage_stats(snap)
    out.print(_rows_table("stages", rows, ms_columns={"avg_ms", "p50_ms", "p95_ms"}))


@stats_app.command("retries")
def stats_retries(snapshots: SnapshotsOption = None) -> None:
    """Attempts per success per stage, and the time spent on failed or timed-out generations."""
    from analytics import queries

    with _snapshot(snapshots) as snap:
        economics = queries.retry_economics(snap)
    out.print(_rows_table("attempts per success", economics.attempts))
    out.print(_rows_table("time spent on failed and timed-out generations", economics.wasted))


@stats_app.command("users")
def stats_users(
    top: int = typer.Option(20, min=1, max=1000, help="Users listed."),
    snapshots: SnapshotsOption = None,
) -> None:
    """Requests per user: the busiest users and the distribution over all users."""
    from analytics import queries

    with _snapshot(snapshots) as snap:
        activity = queries.user_activity(snap, top=top)
    out.print(_rows_table("requests per user", activity.distribution))
    out.print(_rows_table("users by requests per user", activity.histogram))
    out.print(_rows_table(f"top {top} users", activity.top))


class CostBy(StrEnum):
    guild = "guild"
    user = "user"
    model = "model"
    day = "day"


@stats_app.command("cost")
def stats_cost(
    by: Annotated[
        CostBy, typer.Option("--by", help="Group by guild, user, model or UTC day.")
    ] = CostBy.guild,
    days: int | None = typer.Option(None, min=1, help="Only requests created in the last DAYS days."),
    snapshots: SnapshotsOption = None,
) -> None:
    """What requests cost (USD, every billed attempt), with billed seconds and unpriced requests."""
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    from analytics import queries

    with _snapshot(snapshots) as snap:
        rows = queries.cost_by(snap, by.value, since)
    out.print(_rows_table(f"cost by {by.value} (USD)", rows))


# --- formatting --------------------------------------------------------------------


def _rows_table(title: str, rows: Rows, ms_columns: set[str] | None = None) -> Table:
    """A rich table of a query result; `ms_columns` are shown in seconds."""
    ms_columns = ms_columns or set()
    table = Table(title=title)
    for name in rows.columns:
        label = name.removesuffix("_ms") + " (s)" if name in ms_columns else name
        # Spaces let a narrow terminal wrap a header instead of cutting it.
        table.add_column(
            label.replace("_", " "), justify="right" if _numeric(rows, name) else "left", overflow="fold"
        )
    for row in rows.rows:
        table.add_row(*(_cell(v, name in ms_columns) for name, v in zip(rows.columns, row, strict=True)))
    return table


def _numeric(rows: Rows, name: str) -> bool:
    return any(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in rows.column(name))


PROMPT_WIDTH = 80


def _clip(prompt: str) -> str:
    """A prompt cut to PROMPT_WIDTH characters, marked as cut (the table shows, it does not quote)."""
    return prompt if len(prompt) <= PROMPT_WIDTH else prompt[: PROMPT_WIDTH - 1] + "…"


def _cell(value: Any, ms: bool = False) -> str:
    if value is None:
        return "-"
    if ms:
        return f"{value / 1000:,.2f}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):  # money and billed seconds: exact, at least 2 places
        whole, _, cents = f"{value:,.6f}".partition(".")
        return f"{whole}.{cents.rstrip('0').ljust(2, '0')}"
    if isinstance(value, datetime):
        return _fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
