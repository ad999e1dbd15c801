"""Incremental exports: changed rows replace old ones, deletions by hand leave, retention's stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from analytics.export import export_snapshot
from analytics.snapshot import read_manifest
from analytics.tables import TABLES
from service.runtime import Runtime
from service.video_request import VideoRequest
from tests.analytics.conftest import pg_exec, pg_rows
from tests.analytics.datagen import generate
from tests.analytics.tables_compare import pg_table, snapshot_keys, snapshot_table

UPDATES = """
UPDATE video_requests SET status = 'generating', started_at = now(), current_stage = 'validation'
WHERE id IN (SELECT id FROM video_requests WHERE status = 'pending' ORDER BY id LIMIT 15);
UPDATE video_requests
SET status = 'completed', completed_at = now(), duration_ms = 4242, progress_percentage = 100
WHERE id IN (SELECT id FROM video_requests WHERE status = 'generating' ORDER BY id LIMIT 10);
UPDATE request_stages SET attempts = attempts + 1, error_message = 'transient'
WHERE id IN (SELECT id FROM request_stages ORDER BY id DESC LIMIT 25);
"""
MANUAL_DELETE = "DELETE FROM video_requests WHERE id IN (SELECT id FROM video_requests ORDER BY id LIMIT 12)"
RETENTION_DELETE = """
BEGIN;
SET LOCAL reeltrace.delete_reason = 'retention';
DELETE FROM video_requests WHERE id IN (
    SELECT id FROM video_requests WHERE status IN ('completed', 'failed', 'timeout')
    ORDER BY created_at LIMIT 40);
COMMIT;
"""


async def _track_new_requests(runtime: Runtime, n: int) -> None:
    tracker = runtime.tracker
    for i in range(n):
        created = await tracker.create_request(
            # Unchecked, as stored: the prompt keeps the spaces the analytics normalise.
            VideoRequest.model_construct(
                user_id=f"user_{i}", guild_id="guild_new", prompt=f"  A  New prompt {i % 3} "
            )
        )
        await tracker.start_request(created.id)
        await tracker.start_stage(created.id, "validation")
        await tracker.complete_stage(created.id, "validation")
        if i % 2:
            await tracker.complete_request(created.id, [f"https://cdn.example/{created.id}.mp4"])


async def test_incremental_export_yields_exactly_the_current_rows(
    dsn: str, snapshot_root: Path, runtime: Runtime
) -> None:
    """After inserts, updates and deletions by hand, the next export holds exactly PostgreSQL's rows."""
    generate(dsn, 1500, span_days=30)
    export_snapshot(dsn, snapshot_root)
    await _track_new_requests(runtime, 8)
    pg_exec(dsn, UPDATES)
    pg_exec(dsn, MANUAL_DELETE)

    result = export_snapshot(dsn, snapshot_root)

    assert result.purged_requests == 12
    assert 0 < result.delta_rows["video_requests"] < 1500
    for spec in TABLES:
        assert snapshot_table(snapshot_root, spec.name) == pg_table(dsn, spec.name), spec.name


def test_retention_deletions_stay_in_the_snapshot(dsn: str, snapshot_root: Path) -> None:
    """Rows the retention job deleted remain in the next snapshot, as they were, with their stages."""
    generate(dsn, 800, span_days=20)
    export_snapshot(dsn, snapshot_root)
    before = {spec.name: snapshot_table(snapshot_root, spec.name) for spec in TABLES}
    pg_exec(dsn, RETENTION_DELETE)
    assert pg_rows(dsn, "SELECT count(*) FROM request_tombstones WHERE reason = 'retention'") == [(40,)]

    result = export_snapshot(dsn, snapshot_root)

    assert result.purged_requests == 0
    for spec in TABLES:
        assert snapshot_table(snapshot_root, spec.name) == before[spec.name], spec.name
    assert len(pg_table(dsn, "video_requests")) == 760


def test_recreated_request_replaces_its_history(dsn: str, snapshot_root: Path) -> None:
    """A request deleted by retention and created again appears once, as its new row."""
    generate(dsn, 50, span_days=5)
    export_snapshot(dsn, snapshot_root)
    (victim,) = pg_rows(dsn, "SELECT id FROM video_requests WHERE status = 'completed' ORDER BY id LIMIT 1")[
        0
    ]
    pg_exec(
        dsn,
        "BEGIN; SET LOCAL reeltrace.delete_reason = 'retention';"
        f"DELETE FROM video_requests WHERE id = '{victim}'; COMMIT;"
        "INSERT INTO video_requests (id, correlation_id, user_id, prompt, created_at)"
        f" VALUES ('{victim}', 'vvd_1800000000000_0000abcd', 'user_x', 'again', now() - interval '40 days')",
    )

    export_snapshot(dsn, snapshot_root)

    rows = [r for r in snapshot_table(snapshot_root, "video_requests") if r[0] == str(victim)]
    assert [(r[3], r[6], r[11]) for r in rows] == [("user_x", "again", "pending")]


def test_rows_committed_late_by_an_open_transaction_are_not_missed(dsn: str, snapshot_root: Path) -> None:
    """A change stamped before an export but committed after it is caught by the next one, without overlap."""
    generate(dsn, 100, span_days=3)
    # A pending row of its own: the generated share of pending rows is random, and may be none.
    (target,) = pg_rows(
        dsn,
        "INSERT INTO video_requests (id, correlation_id, user_id, prompt)"
        " VALUES (gen_random_uuid(), 'vvd_1800000000000_0000beef', 'user_x', 'late') RETURNING id::text",
    )[0]
    export_snapshot(dsn, snapshot_root)
    with psycopg.connect(dsn) as slow:
        slow.execute(
            "UPDATE video_requests SET status = 'generating', started_at = now() WHERE id = %s", (target,)
        )
        missed = export_snapshot(dsn, snapshot_root, overlap=timedelta(0))
        slow.commit()
    assert target not in {
        r[0] for r in snapshot_table(snapshot_root, "video_requests") if r[11] == "generating"
    }

    export_snapshot(dsn, snapshot_root, overlap=timedelta(0))

    statuses = {r[0]: r[11] for r in snapshot_table(snapshot_root, "video_requests")}
    assert statuses[target] == "generating"
    assert read_manifest(snapshot_root).watermark > missed.manifest.watermark


async def test_writes_stamped_long_before_the_export_are_read_by_the_next_one(
    dsn: str, snapshot_root: Path, runtime: Runtime
) -> None:
    """Writes landing with their writer's time of an hour ago (a journal replayed after an
    outage, a clock running behind) reach the next incremental export: its window starts
    only minutes before the last watermark, so the rows are found by when the database wrote them.
    """
    generate(dsn, 50, span_days=2)
    export_snapshot(dsn, snapshot_root)
    runtime.tracker.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
    await _track_new_requests(runtime, 4)

    export_snapshot(dsn, snapshot_root)

    for spec in TABLES:
        assert snapshot_table(snapshot_root, spec.name) == pg_table(dsn, spec.name), spec.name


def test_new_events_are_appended_once(dsn: str, snapshot_root: Path) -> None:
    """Events re-read inside the overlap window are not duplicated."""
    generate(dsn, 200, span_days=2)
    export_snapshot(dsn, snapshot_root)
    pg_exec(
        dsn,
        "INSERT INTO request_events (event_uid, request_id, event_type, message)"
        " SELECT gen_random_uuid(), id, 'api_call', 'late' FROM video_requests ORDER BY id LIMIT 5",
    )

    export_snapshot(dsn, snapshot_root, overlap=timedelta(days=3650))

    keys = snapshot_keys(snapshot_root, "request_events")
    assert sorted(keys) == [r[0] for r in pg_rows(dsn, "SELECT id FROM request_events ORDER BY id")]
    assert len(snapshot_table(snapshot_root, "request_events")) == len(keys)
