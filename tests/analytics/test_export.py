"""The export: complete, faithful, partitioned by day, with a manifest."""

from __future__ import annotations

import os
from datetime import UTC, date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics.errors import ExportInProgress, SourceUnavailable
from analytics.export import export_snapshot
from analytics.reader import open_snapshot
from analytics.snapshot import MANIFEST, VERSIONS, export_lock, read_manifest
from analytics.tables import TABLES
from tests.analytics.conftest import Exported, pg_rows
from tests.analytics.datagen import generate
from tests.analytics.tables_compare import pg_table, snapshot_table
from tests.support.pg import PgCluster


@pytest.mark.parametrize("table", [t.name for t in TABLES])
def test_full_export_holds_exactly_the_database_rows(exported: Exported, table: str) -> None:
    """The first export holds every row of each table, every column equal to PostgreSQL's."""
    assert snapshot_table(exported.root, table) == pg_table(exported.dsn, table)


def test_manifest_records_watermark_and_row_counts(exported: Exported) -> None:
    """The published manifest names the version, the watermark and each table's row count."""
    manifest = read_manifest(exported.root)
    g = exported.generated
    assert {t: manifest.rows(t) for t in ("video_requests", "request_stages", "request_events")} == {
        "video_requests": g.requests,
        "request_stages": g.stages,
        "request_events": g.events,
    }
    (db_now,) = pg_rows(exported.dsn, "SELECT now()")[0]
    assert manifest.watermark <= db_now
    assert manifest.window_start is None
    assert manifest.delta_rows["video_requests"] == g.requests


def test_files_are_partitioned_by_utc_day(exported: Exported) -> None:
    """Each data file sits in the partition of its rows' UTC day (the request's, for stages)."""
    manifest = read_manifest(exported.root)
    for spec in TABLES:
        partitions = manifest.tables[spec.name].partitions
        assert len(partitions) > 100
        for day, files in partitions.items():
            for f in files:
                stamps = pq.ParquetFile(exported.root / f.path).read(columns=[spec.day_from]).column(0)
                days = {ts.astimezone(UTC).date() for ts in stamps.to_pylist()}
                assert days == {date.fromisoformat(day)}


def test_tricky_text_survives_the_round_trip(exported: Exported) -> None:
    """Quotes, commas, newlines, tabs, backslashes, non-ASCII and empty prompts come back intact."""
    with open_snapshot(exported.root) as snap:
        prompts = {r[0] for r in snap.execute("SELECT DISTINCT prompt FROM video_requests").fetchall()}
    assert 'A cat, "surfing"\non a\twave' in prompts
    assert "Émile rides a café bicycle — très vite ☕" in prompts
    assert "back\\slash and 'quotes'" in prompts
    assert "" in prompts


def test_a_second_export_without_changes_links_every_file(exported: Exported, tmp_path: Path) -> None:
    """An export with nothing changed shares every data file with the previous version."""
    root = tmp_path / "snap"
    first = export_snapshot(exported.dsn, root).manifest
    second = export_snapshot(exported.dsn, root, overlap=timedelta(0)).manifest
    assert second.previous == first.version
    assert second.delta_rows == {"video_requests": 0, "request_stages": 0, "request_events": 0}
    for spec in TABLES:
        old = first.tables[spec.name].files()
        new = second.tables[spec.name].files()
        assert [os.stat(root / f.path).st_ino for f in new] == [os.stat(root / f.path).st_ino for f in old]


def test_an_export_while_another_runs_is_refused(exported: Exported, tmp_path: Path) -> None:
    """A second export of the same directory fails with ExportInProgress instead of interleaving."""
    root = tmp_path / "snap"
    with export_lock(root), pytest.raises(ExportInProgress):
        export_snapshot(exported.dsn, root)
    assert not (root / MANIFEST).exists()


def test_old_versions_are_pruned_keeping_the_previous(exported: Exported, tmp_path: Path) -> None:
    """After three exports only the current and the previous version remain on disk."""
    root = tmp_path / "snap"
    for _ in range(3):
        manifest = export_snapshot(exported.dsn, root).manifest
    assert sorted(p.name for p in (root / VERSIONS).iterdir()) == [manifest.previous, manifest.version]


def test_sharded_streams_read_the_same_rows(
    dsn: str, snapshot_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a table in several page-range streams yields each row exactly once."""
    generate(dsn, 4000, span_days=10)
    monkeypatch.setattr("analytics.export.SHARD_MIN_ROWS", 1)
    result = export_snapshot(dsn, snapshot_root, workers=3)
    for spec in TABLES:
        assert snapshot_table(snapshot_root, spec.name) == pg_table(dsn, spec.name)
    assert result.delta_rows["video_requests"] == 4000


def test_an_empty_database_exports_empty_tables(dsn: str, snapshot_root: Path) -> None:
    """Exporting a database without requests publishes a snapshot with zero rows per table."""
    manifest = export_snapshot(dsn, snapshot_root).manifest
    assert all(manifest.rows(spec.name) == 0 for spec in TABLES)
    with open_snapshot(snapshot_root) as snap:
        assert snap.execute("SELECT count(*) FROM request_events").fetchall() == [(0,)]


def test_unreachable_database_is_a_clear_error(snapshot_root: Path) -> None:
    """An export against a server that is not there names the problem and publishes nothing."""
    with pytest.raises(SourceUnavailable, match="unreachable"):
        export_snapshot("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", snapshot_root)
    assert not (snapshot_root / MANIFEST).exists()


def test_unmigrated_database_asks_for_migrate(pg_cluster: PgCluster, snapshot_root: Path) -> None:
    """A database without the schema fails with a message pointing at `reeltrace migrate`."""
    name = pg_cluster.new_database(from_template=False)
    try:
        with pytest.raises(SourceUnavailable, match="reeltrace migrate"):
            export_snapshot(pg_cluster.url(name), snapshot_root)
    finally:
        pg_cluster.drop_database(name)
