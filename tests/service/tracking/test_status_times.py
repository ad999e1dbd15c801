"""A legal status change made by hand (plain SQL) gets its times filled by the database."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from service.runtime import Runtime
from service.video_request import VideoRequest


def _row(database_url: str, request_id: uuid.UUID) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT started_at, completed_at, duration_ms, completed_at - started_at"
            " FROM video_requests WHERE id = %s",
            (request_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def _sql(database_url: str, statement: str, request_id: uuid.UUID) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement.encode(), (request_id,))


async def test_hand_made_start_sets_started_at(runtime: Runtime, database_url: str) -> None:
    """`UPDATE ... SET status = 'generating'` on a pending request leaves started_at set."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="u", prompt="by hand"))
    _sql(database_url, "UPDATE video_requests SET status = 'generating' WHERE id = %s", created.id)
    started_at, completed_at, duration_ms, _ = _row(database_url, created.id)
    assert started_at is not None
    assert (completed_at, duration_ms) == (None, None)


async def test_hand_made_completion_sets_completed_at_and_duration(
    runtime: Runtime, database_url: str
) -> None:
    """`UPDATE ... SET status = 'completed'` leaves completed_at and duration_ms = completed - started."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="u", prompt="by hand"))
    _sql(database_url, "UPDATE video_requests SET status = 'generating' WHERE id = %s", created.id)
    _sql(database_url, "UPDATE video_requests SET status = 'completed' WHERE id = %s", created.id)
    started_at, completed_at, duration_ms, elapsed = _row(database_url, created.id)
    assert started_at is not None
    assert completed_at is not None
    assert duration_ms == int(elapsed.total_seconds() * 1000)


async def test_writer_supplied_times_are_kept(runtime: Runtime, database_url: str) -> None:
    """A writer that sets the times itself (the tracker, a replayed journal write) keeps them."""
    created = await runtime.tracker.create_request(VideoRequest(user_id="u", prompt="by hand"))
    _sql(
        database_url,
        "UPDATE video_requests SET status = 'generating', started_at = '2026-01-01T00:00:00Z' WHERE id = %s",
        created.id,
    )
    _sql(
        database_url,
        "UPDATE video_requests SET status = 'failed', completed_at = '2026-01-01T00:00:02Z',"
        " duration_ms = 1234 WHERE id = %s",
        created.id,
    )
    _, _, duration_ms, elapsed = _row(database_url, created.id)
    assert duration_ms == 1234
    assert elapsed.total_seconds() == 2
