"""Opening the latest published snapshot in DuckDB.

The reader resolves the published manifest once and defines one view per table over
exactly the files it lists, so a query never mixes two versions and never sees a
version being written. Timestamps are read, bucketed and printed in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from analytics.errors import SnapshotCorrupt
from analytics.snapshot import Manifest, read_manifest
from analytics.tables import TABLES


@dataclass(frozen=True)
class SnapshotInfo:
    """Which snapshot answered: its version, watermark and size."""

    version: str
    watermark: datetime
    exported_at: datetime
    rows: dict[str, int]

    @classmethod
    def of(cls, manifest: Manifest) -> SnapshotInfo:
        return cls(
            version=manifest.version,
            watermark=manifest.watermark,
            exported_at=manifest.exported_at,
            rows={spec.name: manifest.rows(spec.name) for spec in TABLES},
        )

    def age_seconds(self, now: datetime | None = None) -> float:
        """How far behind PostgreSQL the snapshot is: now minus its watermark."""
        return max(0.0, ((now or datetime.now(UTC)) - self.watermark).total_seconds())


# What DuckDB raises for a data file it cannot open or decode.
UNREADABLE = (duckdb.IOException, duckdb.InvalidInputException)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Snapshot:
    """A DuckDB connection with the views `video_requests`, `request_stages`, `request_events`."""

    def __init__(self, root: Path, *, threads: int | None = None) -> None:
        manifest = read_manifest(root)
        self.info = SnapshotInfo.of(manifest)
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")
        for spec in TABLES:
            files = manifest.tables[spec.name].files() if spec.name in manifest.tables else []
            if files:
                paths = [root / f.path for f in files]
                missing = [p for p in paths if not p.exists()]
                if missing:
                    raise SnapshotCorrupt(f"snapshot {manifest.version} lacks {missing[0]}")
                listing = ", ".join(_sql_string(str(p)) for p in paths)
                # The day is in the path, not in the file; the queries bucket
                # created_at themselves, so the partition column is not read.
                # By name, and with the table's empty schema: files written before a
                # column was added lack it, and read it as NULL.
                self.con.register(f"_{spec.name}_empty", spec.empty())
                try:
                    self.con.execute(
                        f"CREATE VIEW {spec.name} AS SELECT * FROM read_parquet([{listing}], "
                        "hive_partitioning = false, union_by_name = true) "
                        f"UNION ALL BY NAME SELECT * FROM _{spec.name}_empty"
                    )
                except UNREADABLE as exc:
                    self.con.close()
                    raise SnapshotCorrupt(f"snapshot {manifest.version} cannot be read: {exc}") from exc
            else:
                self.con.register(f"_{spec.name}_empty", spec.empty())
                self.con.execute(f"CREATE VIEW {spec.name} AS SELECT * FROM _{spec.name}_empty")

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql, params or {})

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_snapshot(root: Path, *, threads: int | None = None) -> Snapshot:
    """The latest published snapshot under `root`; SnapshotNotFound before the first export."""
    return Snapshot(root, threads=threads)
