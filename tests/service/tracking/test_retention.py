"""Request Data Retention: unlimited by default; a daily job when REQUEST_RETENTION_DAYS is set."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import text

from service.background import background_jobs
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.retention import delete_expired
from service.video_request import VideoRequest
from tests.support.logs import json_logs
from tests.support.sql import sql_engine


async def aged(runtime: Runtime, days: int, status: RequestStatus | None) -> uuid.UUID:
    """A request created `days` ago, left in `status` (or pending)."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="ret", prompt="old"))
    if status is not None:
        await runtime.tracker.start_request(created.id)
        if status.is_terminal:
            await runtime.tracker.transition(created.id, status)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET created_at = now() - make_interval(days => :d) WHERE id = :id"),
            {"d": days, "id": created.id},
        )
    return created.id


async def count(runtime: Runtime, table: str, request_id: uuid.UUID) -> int:
    column = "id" if table == "video_requests" else "request_id"
    async with sql_engine(runtime).connect() as conn:
        return int(
            (
                await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": request_id}
                )
            ).scalar_one()
        )


async def test_old_terminal_requests_are_deleted_with_stages_and_events(runtime: Runtime) -> None:
    """Terminal requests older than the retention go, with their stages and events; the count is logged."""
    old = [
        await aged(runtime, 40, s)
        for s in (RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.TIMEOUT)
    ]
    young = await aged(runtime, 5, RequestStatus.COMPLETED)
    with json_logs() as lines:
        deleted = await delete_expired(runtime.database, 30)
    assert deleted == 3
    for rid in old:
        assert [
            await count(runtime, t, rid) for t in ("video_requests", "request_stages", "request_events")
        ] == [0, 0, 0]
    assert await count(runtime, "video_requests", young) == 1
    [line] = lines("retention_cleanup")
    assert (line["deleted_count"], line["retention_days"]) == (3, 30)


async def test_non_terminal_requests_are_never_deleted(runtime: Runtime) -> None:
    """However old, a pending or generating request stays."""
    pending = await aged(runtime, 400, None)
    generating = await aged(runtime, 400, RequestStatus.GENERATING)
    assert await delete_expired(runtime.database, 1) == 0
    assert await count(runtime, "video_requests", pending) == 1
    assert await count(runtime, "video_requests", generating) == 1


async def test_retention_deletions_leave_retention_tombstones(runtime: Runtime) -> None:
    """Deleted rows are recorded as retention tombstones, so snapshots keep them as history."""
    rid = await aged(runtime, 40, RequestStatus.COMPLETED)
    await delete_expired(runtime.database, 30)
    async with sql_engine(runtime).connect() as conn:
        reason = (
            await conn.execute(
                text("SELECT reason FROM request_tombstones WHERE request_id = :id"), {"id": rid}
            )
        ).scalar()
    assert reason == "retention"


async def test_deletes_in_batches(runtime: Runtime) -> None:
    """The job removes everything due, batch after batch."""
    for _ in range(7):
        await aged(runtime, 40, RequestStatus.COMPLETED)
    assert await delete_expired(runtime.database, 30, batch_size=2) == 7


def test_retention_is_unlimited_by_default(settings: Settings) -> None:
    """Without REQUEST_RETENTION_DAYS no cleanup job is scheduled at all."""
    assert settings.request_retention_days is None


async def test_job_is_scheduled_only_when_configured(settings: Settings, database_url: str) -> None:
    """With the variable set, the service schedules the job (here every 50 ms) and it deletes."""
    configured = settings.model_copy(update={"request_retention_days": 30, "cleanup_interval_seconds": 0.05})
    runtime = Runtime.build(configured, database_url, source_service="test")
    unconfigured = Runtime.build(settings, database_url, source_service="test")
    try:
        idle = background_jobs(unconfigured, asyncio.Event())
        for job in idle:
            job.close()
        assert len(idle) == 1  # the journal replayer only
        rid = await aged(runtime, 40, RequestStatus.COMPLETED)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(job) for job in background_jobs(runtime, stop)]
        for _ in range(100):
            if await count(runtime, "video_requests", rid) == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*tasks)
        assert await count(runtime, "video_requests", rid) == 0
    finally:
        await runtime.close()
        await unconfigured.close()


def test_cleanup_command_explains_when_retention_is_unset(database_url: str, tmp_path: Path) -> None:
    """`reeltrace cleanup` without REQUEST_RETENTION_DAYS says so and deletes nothing."""
    env = {"DATABASE_URL": database_url, "REELTRACE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "cleanup"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # keeping everything is a valid setting
    assert (
        "retention is not configured (REQUEST_RETENTION_DAYS is unset): nothing is deleted" in result.stdout
    )
    assert "Traceback" not in result.stderr
