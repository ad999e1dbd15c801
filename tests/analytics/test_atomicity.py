"""A killed export leaves the previous snapshot readable, and the next export succeeds."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analytics.errors import ExportCancelled, SnapshotCorrupt
from analytics.export import NullObserver, export_snapshot
from analytics.reader import open_snapshot
from analytics.snapshot import STAGING, read_manifest
from tests.analytics.conftest import pg_exec
from tests.analytics.datagen import generate
from tests.analytics.tables_compare import pg_table, snapshot_table

# Runs an export that SIGKILLs its own process when it reaches the given point.
KILLED_EXPORT = """
import os, signal, sys
from pathlib import Path
from analytics.export import export_snapshot

where = sys.argv[3]

class Killer:
    def table_started(self, table, total):
        pass
    def rows_exported(self, table, rows):
        if where == "rows" and table == "request_stages":
            os.kill(os.getpid(), signal.SIGKILL)
    def phase(self, name):
        if name == where:
            os.kill(os.getpid(), signal.SIGKILL)

export_snapshot(sys.argv[1], Path(sys.argv[2]), full=True, observer=Killer())
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["rows", "merging", "publishing"])
def test_killed_export_leaves_previous_snapshot_readable(dsn: str, snapshot_root: Path, where: str) -> None:
    """Killing an export mid-stream, mid-merge or just before publishing changes nothing readers see."""
    generate(dsn, 600, span_days=10)
    first = export_snapshot(dsn, snapshot_root).manifest
    before = snapshot_table(snapshot_root, "video_requests")
    pg_exec(dsn, "UPDATE video_requests SET prompt = 'changed' WHERE status = 'completed'")

    proc = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, dsn, str(snapshot_root), where],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )

    assert proc.returncode == -9, proc.stderr
    assert read_manifest(snapshot_root).version == first.version
    assert snapshot_table(snapshot_root, "video_requests") == before
    with open_snapshot(snapshot_root) as snap:
        assert snap.execute("SELECT count(*) FROM request_stages").fetchall() == [
            (first.rows("request_stages"),)
        ]

    again = export_snapshot(dsn, snapshot_root).manifest
    assert again.previous == first.version
    assert snapshot_table(snapshot_root, "video_requests") == pg_table(dsn, "video_requests")
    assert not any((snapshot_root / STAGING).glob("*"))


def test_a_damaged_data_file_stops_the_export_with_a_message(dsn: str, snapshot_root: Path) -> None:
    """A previous version's file that is not Parquet is named as SnapshotCorrupt; nothing is published."""
    generate(dsn, 50, span_days=2)
    first = export_snapshot(dsn, snapshot_root).manifest
    for f in first.tables["video_requests"].files():
        (snapshot_root / f.path).write_bytes(b"not parquet")
    pg_exec(dsn, "UPDATE video_requests SET prompt = 'changed'")

    with pytest.raises(SnapshotCorrupt, match=f"snapshot {first.version} in .* cannot be read"):
        export_snapshot(dsn, snapshot_root)
    assert read_manifest(snapshot_root).version == first.version


# Runs an export cancelled once rows flow, then lets the process exit.
CANCELLED_EXPORT = """
import sys, threading
from pathlib import Path
from analytics.errors import ExportCancelled
from analytics.export import NullObserver, export_snapshot

cancel = threading.Event()

class CancelAtFirstRows(NullObserver):
    def rows_exported(self, table, rows):
        cancel.set()

try:
    export_snapshot(sys.argv[1], Path(sys.argv[2]), full=True, cancel=cancel, observer=CancelAtFirstRows())
except ExportCancelled:
    print("cancelled")
"""


class _CancelAtFirstRows(NullObserver):
    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def rows_exported(self, table: str, rows: int) -> None:
        self.cancel.set()


def test_a_cancelled_export_publishes_nothing_and_the_next_one_completes(
    dsn: str, snapshot_root: Path
) -> None:
    """Cancelled once rows flow, the export ends with ExportCancelled; the published version stays."""
    generate(dsn, 3000, span_days=5)
    first = export_snapshot(dsn, snapshot_root).manifest
    cancel = threading.Event()

    with pytest.raises(ExportCancelled):
        export_snapshot(dsn, snapshot_root, full=True, cancel=cancel, observer=_CancelAtFirstRows(cancel))

    assert read_manifest(snapshot_root).version == first.version
    export_snapshot(dsn, snapshot_root, full=True)
    for name in ("video_requests", "request_stages", "request_events"):
        assert snapshot_table(snapshot_root, name) == pg_table(dsn, name), name


@pytest.mark.slow
def test_a_process_exits_after_cancelling_an_export(dsn: str, snapshot_root: Path) -> None:
    """Streams given up mid-read leave no pyarrow read-ahead thread waiting for rows: the
    process that cancelled the export exits (such a thread would block its exit for good)."""
    generate(dsn, 3000, span_days=5)
    proc = subprocess.run(
        [sys.executable, "-c", CANCELLED_EXPORT, dsn, str(snapshot_root)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "cancelled"), proc.stderr
