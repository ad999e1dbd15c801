"""Opening a snapshot: the published version only, and clear errors when there is none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics import queries
from analytics.errors import SnapshotCorrupt, SnapshotNotFound
from analytics.export import export_snapshot
from analytics.reader import SnapshotInfo, open_snapshot
from analytics.snapshot import MANIFEST, read_manifest
from tests.analytics.datagen import generate


def test_no_snapshot_yet_says_to_export(tmp_path: Path) -> None:
    """Opening a directory without a published manifest asks for `reeltrace export`."""
    with pytest.raises(SnapshotNotFound, match="reeltrace export"):
        open_snapshot(tmp_path)


def test_a_damaged_manifest_is_reported(tmp_path: Path) -> None:
    """A manifest that is not JSON, or not a manifest, is SnapshotCorrupt naming the file."""
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(SnapshotCorrupt, match=MANIFEST):
        open_snapshot(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": 1}')
    with pytest.raises(SnapshotCorrupt, match="not a snapshot manifest"):
        open_snapshot(tmp_path)


def test_a_missing_data_file_is_reported(dsn: str, snapshot_root: Path) -> None:
    """A data file listed by the manifest but gone from disk makes the snapshot SnapshotCorrupt."""
    generate(dsn, 50, span_days=2)
    manifest = export_snapshot(dsn, snapshot_root).manifest
    (snapshot_root / manifest.tables["video_requests"].files()[0].path).unlink()
    with pytest.raises(SnapshotCorrupt, match="lacks"):
        open_snapshot(snapshot_root)


def test_an_unreadable_data_file_is_reported(dsn: str, snapshot_root: Path) -> None:
    """A data file that is not Parquet fails the query with SnapshotCorrupt, not a driver error."""
    generate(dsn, 50, span_days=2)
    manifest = export_snapshot(dsn, snapshot_root).manifest
    for which in (-1, 0):  # a file the query reaches, and the one the view's schema comes from
        target = snapshot_root / manifest.tables["video_requests"].files()[which].path
        target.unlink()
        target.write_bytes(b"this is not parquet")
        with pytest.raises(SnapshotCorrupt, match="cannot be read"), open_snapshot(snapshot_root) as snap:
            queries.global_latency(snap)


def test_the_info_names_the_published_version(dsn: str, snapshot_root: Path) -> None:
    """The reader reports the manifest's version, watermark and row counts."""
    generate(dsn, 30, span_days=1)
    manifest = export_snapshot(dsn, snapshot_root).manifest
    with open_snapshot(snapshot_root) as snap:
        assert snap.info == SnapshotInfo.of(read_manifest(snapshot_root))
        assert snap.info.rows["video_requests"] == 30
        assert snap.info.watermark == manifest.watermark


def test_age_is_now_minus_the_watermark() -> None:
    """The age of a snapshot is how long ago its watermark was, never negative."""
    mark = datetime(2026, 1, 1, tzinfo=UTC)
    info = SnapshotInfo("v1", mark, mark, {})
    assert info.age_seconds(mark + timedelta(minutes=2)) == 120.0
    assert info.age_seconds(mark - timedelta(seconds=5)) == 0.0
