"""Day-partitioned Parquet files: writing a stream of rows, and merging a delta.

Rows are written with pyarrow's dataset writer into hive-style `day=YYYY-MM-DD`
directories (the day is the directory, not a column in the file). Merging a delta
into the previous version touches only the days that changed: an untouched day is
hard-linked, a day that exists only in the delta is moved in, and a day in both is
rewritten once, as its old rows minus the re-exported and purged ones, plus the
delta's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from analytics.snapshot import DataFile, TableFiles, link_or_copy
from analytics.source import DAY, with_day
from analytics.tables import TableSpec

COMPRESSION = "zstd"
ROW_GROUP_ROWS = 128 * 1024
# Bounds the writer's memory when a delta is spread over many days: past this many
# open files the least recently used is closed and that day gets another file.
MAX_OPEN_FILES = 64


def write_stream(
    batches: Iterable[pa.RecordBatch],
    spec: TableSpec,
    directory: Path,
    basename: str,
    on_rows: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write batches (with a `day` column) into day partitions under `directory`."""
    written: list[Path] = []

    def counted() -> Iterable[pa.RecordBatch]:
        for batch in batches:
            yield batch
            if on_rows is not None:
                on_rows(batch.num_rows)

    fmt = ds.ParquetFileFormat()
    ds.write_dataset(
        pa.RecordBatchReader.from_batches(with_day(spec.schema), counted()),
        directory,
        format=fmt,
        partitioning=ds.partitioning(pa.schema([(DAY, pa.date32())]), flavor="hive"),
        basename_template=f"{basename}-{{i}}.parquet",
        file_options=fmt.make_write_options(compression=COMPRESSION, use_dictionary=list(spec.dictionary)),
        existing_data_behavior="overwrite_or_ignore",
        max_open_files=MAX_OPEN_FILES,
        min_rows_per_group=min(ROW_GROUP_ROWS, 32 * 1024),
        max_rows_per_group=ROW_GROUP_ROWS,
        file_visitor=lambda f: written.append(Path(f.path)),
        use_threads=True,
    )
    return written


def day_of(path: Path) -> str:
    """The partition day of a data file, from its `day=YYYY-MM-DD` directory."""
    name = path.parent.name
    if not name.startswith(f"{DAY}="):
        raise ValueError(f"{path} is not inside a day partition")
    return name.removeprefix(f"{DAY}=")


def read_file(path: Path, spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
    """One data file as its table's schema (ParquetFile: no partition inference).

    A file written before a column was added to the table reads that column as nulls.
    """
    parquet = pq.ParquetFile(path)
    present = set(parquet.schema_arrow.names)
    wanted = [c for c in columns if c in present] if columns is not None else None
    table = parquet.read(columns=wanted).replace_schema_metadata(None)
    for name, dtype in spec.columns:
        if name not in present and (columns is None or name in columns):
            table = table.append_column(pa.field(name, dtype), pa.nulls(len(table), dtype))
    if columns is None:
        return table.select(spec.names).cast(spec.schema)
    return table.select(columns)


def contains_any(path: Path, column: str, values: pa.Array) -> bool:
    col = pq.ParquetFile(path).read(columns=[column]).column(column)
    return bool(pc.any(pc.is_in(col, value_set=values)).as_py())


class TableMerge:
    """Builds one table's files in a new version from the old version and a delta."""

    def __init__(self, spec: TableSpec, root: Path, version: str) -> None:
        self.spec = spec
        self.root = root
        self.version = version
        self.table_dir = root / "versions" / version / spec.name

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _target(self, day: str, name: str) -> Path:
        path = self.table_dir / f"{DAY}={day}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def purge_hits(self, old: TableFiles | None, purge: pa.Array, days: Iterable[str] | None) -> set[str]:
        """The old days holding rows of purged requests (only `days`, if given, are searched)."""
        if old is None or len(purge) == 0:
            return set()
        candidates = old.partitions if days is None else [d for d in days if d in old.partitions]
        return {
            day
            for day in candidates
            if any(
                contains_any(self.root / f.path, self.spec.request_key, purge) for f in old.partitions[day]
            )
        }

    def build(
        self, old: TableFiles | None, staged: dict[str, list[Path]], purge: pa.Array, purge_days: set[str]
    ) -> TableFiles:
        old_parts = old.partitions if old is not None else {}
        partitions: dict[str, list[DataFile]] = {}
        for day in sorted(set(old_parts) | set(staged)):
            olds = old_parts.get(day, [])
            news = staged.get(day, [])
            if not news and day not in purge_days:
                files = [self._link(day, f) for f in olds]
            elif not olds:
                files = [self._move(day, p) for p in news]
            else:
                files = self._rewrite(day, olds, news, purge)
            if files:
                partitions[day] = files
        return TableFiles(rows=sum(f.rows for fs in partitions.values() for f in fs), partitions=partitions)

    def _link(self, day: str, f: DataFile) -> DataFile:
        target = self._target(day, Path(f.path).name)
        link_or_copy(self.root / f.path, target)
        return DataFile(self._rel(target), f.rows)

    def _move(self, day: str, path: Path) -> DataFile:
        target = self._target(day, path.name)
        path.replace(target)
        return DataFile(self._rel(target), pq.read_metadata(target).num_rows)

    def _rewrite(self, day: str, olds: list[DataFile], news: list[Path], purge: pa.Array) -> list[DataFile]:
        spec = self.spec
        delta = pa.concat_tables([spec.empty(), *(read_file(p, spec) for p in news)])
        replaced = delta.column(spec.key).combine_chunks()
        kept = []
        for f in olds:
            table = read_file(self.root / f.path, spec)
            drop = pc.is_in(table.column(spec.key), value_set=replaced)
            if len(purge):
                drop = pc.or_(drop, pc.is_in(table.column(spec.request_key), value_set=purge))
            kept.append(table.filter(pc.invert(drop)))
        merged = pa.concat_tables([*kept, delta])
        if merged.num_rows == 0:
            return []
        target = self._target(day, f"{self.version}-merged.parquet")
        pq.write_table(
            merged,
            target,
            compression=COMPRESSION,
            use_dictionary=list(spec.dictionary),
            row_group_size=ROW_GROUP_ROWS,
        )
        return [DataFile(self._rel(target), merged.num_rows)]


def staged_by_day(files: Iterable[Path]) -> dict[str, list[Path]]:
    by_day: dict[str, list[Path]] = {}
    for path in sorted(files):
        by_day.setdefault(day_of(path), []).append(path)
    return by_day
