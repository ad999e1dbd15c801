"""Benchmark: Parquet export of 10,000,000 requests, and DuckDB analytics over the snapshot.

Run: `python -m pytest tests/bench/bench_analytics.py -s` (not part of the suite), or
`python -m tests.bench.bench_analytics`. BENCH_REQUESTS and BENCH_DETAILED change the
sizes. A PostgreSQL cluster of its own is filled with BENCH_REQUESTS generated
requests over a year (1,000,000 per load chunk); the first BENCH_DETAILED of them (500,000 by default) also
get their stages and events (~4.3 and ~9.3 per request), because generating those
for all 10 M requests (~140 M rows) takes far longer than the export being measured.

Printed: export rows per second out of PostgreSQL, per table and overall (target
>= 200k rows/s), the time of a full and of an incremental export, DuckDB guild-stats
time (target < 1 s) and DuckDB global-percentile time. Numbers depend on the machine:
the figures reported with this code were taken on 2 cores shared with other work.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from analytics import queries
from analytics.export import export_snapshot
from analytics.reader import Snapshot, open_snapshot
from tests.analytics.datagen import bulk_requests
from tests.support.pg import PgCluster

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "10000000"))
DETAILED = int(os.environ.get("BENCH_DETAILED", "500000"))
REPEAT = 5


class _Timing:
    """Per table: rows and the time from the first to the last batch written."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.phases: dict[str, float] = {}
        self.started = time.perf_counter()

    def table_started(self, table: str, total_rows: int) -> None:
        self.rows.setdefault(table, 0)

    def rows_exported(self, table: str, rows: int) -> None:
        now = time.perf_counter()
        with self.lock:
            self.first.setdefault(table, now)
            self.last[table] = now
            self.rows[table] += rows

    def phase(self, name: str) -> None:
        self.phases[name] = time.perf_counter() - self.started


def _timed(fn: Callable[[], object], repeat: int = REPEAT) -> tuple[float, float]:
    """Median and best wall time of `fn` in seconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), min(samples)


def _log(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def run(workdir: Path) -> None:
    cluster = PgCluster(workdir / "pg")
    try:
        cluster.create_template()
        dsn = cluster.url(cluster.new_database())
        started = time.perf_counter()
        generated = bulk_requests(
            dsn,
            REQUESTS,
            detailed=DETAILED,
            progress=lambda m: _log(f"  [{time.perf_counter() - started:6.0f} s] {m}"),
        )
        _log(f"generated {generated} in {time.perf_counter() - started:.0f} s")
        with psycopg.connect(dsn) as conn:
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        _log(f"database size: {size[0] if size else '?'}")

        root = workdir / "snapshots"
        timing = _Timing()
        result = export_snapshot(dsn, root, observer=timing)
        _log("\n== full export (PostgreSQL -> Parquet) ==")
        for table, rows in timing.rows.items():
            span = timing.last.get(table, 0) - timing.first.get(table, 0)
            rate = f"{rows / span:,.0f} rows/s" if span > 0 else "-"
            _log(f"  {table:<16} {rows:>12,} rows  {span:7.1f} s streaming  {rate}")
        _log(
            f"  overall          {result.rows_read:>12,} rows  {result.read_seconds:7.1f} s  "
            f"{result.rows_per_second:,.0f} rows/s (target >= 200,000)"
        )
        _log(f"  whole export incl. merge and publish: {result.total_seconds:.1f} s")
        snapshot_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        _log(f"  snapshot size: {snapshot_bytes / 1e9:.2f} GB")

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE video_requests SET status = 'generating', started_at = now()"
                " WHERE id IN (SELECT id FROM video_requests WHERE status = 'pending' LIMIT 20000)"
            )
            conn.execute(
                "DELETE FROM video_requests WHERE id IN"
                " (SELECT id FROM video_requests WHERE status = 'failed' LIMIT 1000)"
            )
        incremental = export_snapshot(dsn, root)
        _log("\n== incremental export after 20,000 updates and 1,000 deletions ==")
        _log(
            f"  {incremental.rows_read:,} rows read, {incremental.purged_requests:,} purged, "
            f"{incremental.total_seconds:.2f} s in all"
        )

        with open_snapshot(root) as snap:
            busiest, median_guild = _guilds(snap)
        _log("\n== DuckDB over the snapshot (open + query, median of 5, best) ==")
        for guild, label in ((busiest, "busiest guild"), (median_guild, "median guild")):
            for bucket in ("day", "week", "month"):
                med, best = _timed(lambda g=guild, b=bucket: _guild_stats(root, g, b))
                _log(f"  guild stats, {label} ({guild}), per {bucket:<5}: {med:.3f} s (best {best:.3f} s)")
        med, best = _timed(lambda: _global(root))
        _log(f"  global P50/P95/P99 + failure rate (3 groupings): {med:.3f} s (best {best:.3f} s)")
        _log(f"\ncores: {os.cpu_count()}, load average: {os.getloadavg()}")
    finally:
        cluster.server.cleanup()


def _guilds(snap: Snapshot) -> tuple[str, str]:
    rows = snap.execute(
        "SELECT guild_id FROM video_requests WHERE guild_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC"
    ).fetchall()
    return rows[0][0], rows[len(rows) // 2][0]


def _guild_stats(root: Path, guild: str, bucket: str) -> None:
    with open_snapshot(root) as snap:
        queries.guild_stats(snap, guild, bucket)


def _global(root: Path) -> None:
    with open_snapshot(root) as snap:
        queries.global_latency(snap)


def _in_own_directory() -> None:
    # Not pytest's tmp_path: concurrent pytest runs rotate those directories away,
    # and this benchmark's server lives for many minutes.
    directory = Path(tempfile.mkdtemp(prefix="reeltrace-bench-analytics-"))
    try:
        run(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_analytics_benchmark() -> None:
    """Prints export throughput and DuckDB query times on BENCH_REQUESTS generated requests."""
    _in_own_directory()


if __name__ == "__main__":
    _in_own_directory()
