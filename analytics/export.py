"""`export_snapshot`: PostgreSQL -> a new, atomically published Parquet snapshot version.

An export reads, inside one consistent PostgreSQL snapshot, every row changed since
the previous watermark (less an overlap margin; see `analytics.source`), writes it
into day partitions in a staging directory, then builds the new version: untouched
days linked from the previous version, changed days merged (a re-exported row
replaces the old one by primary key). Requests deleted by hand since the last
export leave the snapshot with their stages and events; requests deleted by the
retention job stay in it, as history. Only then is the new manifest published.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from analytics import snapshot
from analytics.defaults import DEFAULT_WORKERS
from analytics.errors import AnalyticsError, ExportCancelled, SnapshotCorrupt
from analytics.partitions import TableMerge, staged_by_day, write_stream
from analytics.snapshot import Manifest, TableFiles
from analytics.source import CopyStream, ExportSource, shard_bounds
from analytics.tables import REQUEST_STAGES, TABLES, VIDEO_REQUESTS, TableSpec

DEFAULT_OVERLAP = timedelta(minutes=5)
# A full read of a table with at least this many rows runs in one stream per
# worker, over disjoint page ranges of the heap (each a TID range scan). A delta is
# read in one stream, through the updated_at index: page ranges would make every
# stream scan its whole range for a few changed rows. Every table is read alone (a
# stage carries its request's created_at, which is its day), so each shards cleanly.
SHARD_MIN_ROWS = 200_000


class ExportObserver(Protocol):
    """What an export reports while it runs (the CLI draws progress bars from it)."""

    def table_started(self, table: str, total_rows: int) -> None: ...

    def rows_exported(self, table: str, rows: int) -> None: ...

    def phase(self, name: str) -> None: ...


class NullObserver:
    def table_started(self, table: str, total_rows: int) -> None:
        pass

    def rows_exported(self, table: str, rows: int) -> None:
        pass

    def phase(self, name: str) -> None:
        pass


class _Cancellable:
    """Passes reports on, and ends the export from the stream that reports next once
    `cancel` is set (a stream's rows are reported batch by batch, about 1 MB apart)."""

    def __init__(self, inner: ExportObserver, cancel: threading.Event) -> None:
        self._inner = inner
        self._cancel = cancel

    def _check(self) -> None:
        if self._cancel.is_set():
            raise ExportCancelled("the export was cancelled")

    def table_started(self, table: str, total_rows: int) -> None:
        self._check()
        self._inner.table_started(table, total_rows)

    def rows_exported(self, table: str, rows: int) -> None:
        self._check()
        self._inner.rows_exported(table, rows)

    def phase(self, name: str) -> None:
        self._check()
        self._inner.phase(name)


@dataclass(frozen=True)
class ExportResult:
    manifest: Manifest
    delta_rows: dict[str, int]
    purged_requests: int
    read_seconds: float  # streaming rows out of PostgreSQL into staging files
    total_seconds: float  # the whole export, merge and publish included

    @property
    def rows_read(self) -> int:
        return sum(self.delta_rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.read_seconds if self.read_seconds > 0 else 0.0


@dataclass(frozen=True)
class _Task:
    spec: TableSpec
    index: int
    ctid_lo: str | None
    ctid_hi: str | None


def export_snapshot(
    dsn: str,
    root: Path,
    *,
    full: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    workers: int = DEFAULT_WORKERS,
    observer: ExportObserver | None = None,
    cancel: threading.Event | None = None,
) -> ExportResult:
    """Export the changes since the last snapshot in `root` (everything, the first time).

    Setting `cancel` stops the export at its next record batch with ExportCancelled:
    the COPY streams are cancelled in PostgreSQL, nothing is published, and the next
    export clears what was staged.
    """
    obs = observer or NullObserver()
    if cancel is not None:
        obs = _Cancellable(obs, cancel)
    started = time.perf_counter()
    with snapshot.export_lock(root):
        old = snapshot.current_manifest(root)
        snapshot.clean(root, snapshot.kept_versions(old))
        sequence = old.sequence + 1 if old else 1
        version = f"v{sequence:08d}"
        staging = root / snapshot.STAGING / version
        staging.mkdir(parents=True)
        window_start = None if full or old is None else old.watermark - overlap

        obs.phase("reading")
        with ExportSource(dsn, window_start) as source:
            counts = {spec.name: source.count(spec) for spec in TABLES}
            purge = source.purged_requests() if old is not None else []
            tasks: list[_Task] = []
            for spec in TABLES:
                obs.table_started(spec.name, counts[spec.name])
                if counts[spec.name] == 0:
                    continue
                full_read = window_start is None
                big = counts[spec.name] >= SHARD_MIN_ROWS
                shards = workers if full_read and big else 1
                for lo, hi in shard_bounds(source.pages(spec), shards):
                    tasks.append(_Task(spec, len(tasks), lo, hi))
            staged = _stream(dsn, source, tasks, staging, version, workers, obs)
        read_seconds = time.perf_counter() - started
        delta_rows = {spec.name: 0 for spec in TABLES} | {name: rows for name, (rows, _) in staged.items()}
        for name, rows in delta_rows.items():
            if rows != counts[name]:
                raise AnalyticsError(f"{name}: read {rows} rows where {counts[name]} had changed")

        obs.phase("merging")
        try:
            tables = _build_version(root, old, version, staged, pa.array(purge, pa.string()))
        except pa.ArrowInvalid as exc:
            # Merging reads the previous version's files (a --full export too: it keeps
            # the history retention deleted), so a damaged one stops every export.
            raise SnapshotCorrupt(
                f"snapshot {old.version if old else version} in {root} cannot be read ({exc}); "
                "move the directory aside and export again"
            ) from exc
        manifest = Manifest(
            version=version,
            sequence=sequence,
            previous=old.version if old else None,
            watermark=source.horizon,
            window_start=window_start,
            exported_at=datetime.now(UTC),
            tables=tables,
            delta_rows=delta_rows,
            purged_requests=len(purge),
        )
        obs.phase("publishing")
        snapshot.publish(root, manifest)
        shutil.rmtree(staging, ignore_errors=True)
        snapshot.clean(root, snapshot.kept_versions(manifest))
    return ExportResult(manifest, delta_rows, len(purge), read_seconds, time.perf_counter() - started)


def _stream(
    dsn: str,
    source: ExportSource,
    tasks: list[_Task],
    staging: Path,
    version: str,
    workers: int,
    obs: ExportObserver,
) -> dict[str, tuple[int, list[Path]]]:
    """Run the COPY streams (at most `workers` at once) into staging; rows and files per table."""

    def run(task: _Task) -> tuple[str, int, list[Path]]:
        params = {"window_start": source.window_start, "ctid_lo": task.ctid_lo, "ctid_hi": task.ctid_hi}
        rows = 0

        def on_rows(n: int) -> None:
            nonlocal rows
            rows += n
            obs.rows_exported(task.spec.name, n)

        stream = CopyStream(dsn, source.snapshot_id, task.spec, params)
        # Closed here, whatever happens: a stream given up mid-way (an error, a cancel)
        # must stop its COPY and its readers now, not whenever the garbage collector
        # gets to it (at worst while the interpreter shuts down).
        with contextlib.closing(stream.batches()) as batches:
            files = write_stream(
                batches, task.spec, staging / task.spec.name, f"{version}-t{task.index}", on_rows
            )
        return task.spec.name, rows, files

    staged: dict[str, tuple[int, list[Path]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="export") as pool:
        try:
            for name, rows, files in pool.map(run, tasks):
                prev_rows, prev_files = staged.get(name, (0, []))
                staged[name] = (prev_rows + rows, prev_files + files)
        except BaseException:
            # One stream failed (or was cancelled): streams not started yet would only
            # open connections to be thrown away.
            pool.shutdown(cancel_futures=True)
            raise
    return staged


def _build_version(
    root: Path,
    old: Manifest | None,
    version: str,
    staged: dict[str, tuple[int, list[Path]]],
    purge: pa.Array,
) -> dict[str, TableFiles]:
    tables: dict[str, TableFiles] = {}
    request_days: set[str] = set()
    for spec in TABLES:
        merge = TableMerge(spec, root, version)
        old_files = old.tables.get(spec.name) if old else None
        if spec is VIDEO_REQUESTS:
            hits = merge.purge_hits(old_files, purge, None)
            request_days = hits
        elif spec is REQUEST_STAGES:
            # A stage shares its request's day partition.
            hits = merge.purge_hits(old_files, purge, request_days)
        else:
            # An event is not older than its request; a day earlier is searched too, as
            # a request's time comes from the application's clock, an event's maybe not.
            first = min(request_days, default=None)
            since = None if first is None else (date.fromisoformat(first) - timedelta(days=1)).isoformat()
            days = (
                [] if since is None or old_files is None else [d for d in old_files.partitions if d >= since]
            )
            hits = merge.purge_hits(old_files, purge, days)
        files = staged.get(spec.name, (0, []))[1]
        tables[spec.name] = merge.build(old_files, staged_by_day(files), purge, hits)
    return tables
