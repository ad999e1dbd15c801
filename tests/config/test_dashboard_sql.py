"""Every SQL query of the dashboards runs, as the read-only Grafana role, on a migrated database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.config.support import (
    dashboards,
    datasource_type,
    panels,
    render_sql,
    target_datasource,
    variables,
)

ACTIVE = uuid.UUID("00000000-0000-4000-8000-000000000001")
PENDING = uuid.UUID("00000000-0000-4000-8000-000000000002")
FAILED = uuid.UUID("00000000-0000-4000-8000-000000000003")
ACTIVE_CORRELATION = "vvd_1732312345678_deadbeef"

SEED = f"""
INSERT INTO video_requests (id, correlation_id, pipeline, user_id, guild_id, prompt, trace_id) VALUES
    ('{ACTIVE}', '{ACTIVE_CORRELATION}', 'veo', 'u1', 'g1', 'a red fox running through fresh snow',
     '0af7651916cd43dd8448eb211c80319c'),
    ('{PENDING}', 'vvd_1732312345679_cafebabe', 'lesson', 'u2', NULL, 'plate tectonics for beginners',
     '1af7651916cd43dd8448eb211c80319c'),
    ('{FAILED}', 'vvd_1732312345680_0badf00d', 'veo', 'u1', 'g1', 'a lighthouse in a storm',
     '2af7651916cd43dd8448eb211c80319c');
INSERT INTO request_stages (request_id, stage_name, stage_order, status, attempts, started_at, completed_at,
                            duration_ms) VALUES
    ('{ACTIVE}', 'validation', 1, 'completed', 1, now() - interval '2 minutes',
     now() - interval '119 seconds', 1000),
    ('{ACTIVE}', 'video_generation', 2, 'in_progress', 2, now() - interval '1 minute', NULL, NULL),
    ('{ACTIVE}', 'video_processing', 3, 'pending', 0, NULL, NULL, NULL),
    ('{FAILED}', 'validation', 1, 'completed', 1, now() - interval '5 minutes', now() - interval '5 minutes', 20),
    ('{FAILED}', 'video_generation', 2, 'failed', 4, now() - interval '5 minutes', now(), 300000);
UPDATE video_requests SET status = 'generating', started_at = now() - interval '2 minutes',
       current_stage = 'video_generation', progress_percentage = 25
 WHERE id IN ('{ACTIVE}', '{FAILED}');
UPDATE video_requests SET status = 'failed', completed_at = now(), duration_ms = 120000,
       error_stage = 'video_generation', error_message = 'The model refused the prompt', retry_count = 3
 WHERE id = '{FAILED}';
INSERT INTO request_events (event_uid, request_id, event_type, severity, stage_name, message, data) VALUES
    (gen_random_uuid(), '{ACTIVE}', 'request_created', 'info', NULL, 'accepted', '{{}}'),
    (gen_random_uuid(), '{ACTIVE}', 'stage_started', 'info', 'video_generation', 'attempt 2',
     '{{"attempt": 2}}'),
    (gen_random_uuid(), '{FAILED}', 'request_failed', 'error', 'video_generation', 'refused', '{{}}');
"""


def _sql_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, what, SQL) of every PostgreSQL query: panel targets and variables."""
    found = []
    for _, dashboard in dashboards():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                ds = target_datasource(panel, target)
                if "rawSql" in target:
                    assert datasource_type(ds["uid"]) == "grafana-postgresql-datasource"
                    found.append((dashboard["uid"], f"{panel['title']}/{target['refId']}", target["rawSql"]))
        for var in variables(dashboard):
            if var["type"] == "query" and datasource_type(var["datasource"]["uid"]) != "prometheus":
                found.append((dashboard["uid"], f"variable {var['name']}", str(var["query"])))
    return found


QUERIES = _sql_queries()


@pytest.fixture
def seeded_url(database_url: str) -> str:
    """A migrated database holding an active, a pending and a failed request."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SEED.encode())
    return database_url


def _run_as_reader(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE reeltrace_reader")
        return conn.execute(query.encode()).fetchall()


def _rendered(query: str, correlation_id: str) -> str:
    now = datetime.now(UTC)
    return render_sql(
        query,
        {"correlation_id": correlation_id},
        time_from=(now - timedelta(hours=1)).isoformat(),
        time_to=(now + timedelta(minutes=1)).isoformat(),
    )


def test_there_are_sql_queries() -> None:
    """The live, lookup and spend dashboards read PostgreSQL (so the checks below check something)."""
    assert {uid for uid, _, _ in QUERIES} == {"reeltrace-live", "reeltrace-request-lookup", "reeltrace-spend"}


@pytest.mark.parametrize(("uid", "what", "query"), QUERIES, ids=[f"{u}:{w}" for u, w, _ in QUERIES])
def test_query_returns_rows_for_the_seeded_requests(seeded_url: str, uid: str, what: str, query: str) -> None:
    """The query runs as reeltrace_reader and finds the seeded requests."""
    rows = _run_as_reader(seeded_url, _rendered(query, ACTIVE_CORRELATION))
    assert rows, f"{uid} {what} returned nothing"


@pytest.mark.parametrize("key", [ACTIVE_CORRELATION, str(ACTIVE)], ids=["correlation id", "uuid"])
def test_lookup_finds_the_request_by_either_id(seeded_url: str, key: str) -> None:
    """The lookup's row, stages and events come back for a correlation ID or the request's UUID."""
    lookup = [q for uid, _, q in QUERIES if uid == "reeltrace-request-lookup"]
    counts = [len(_run_as_reader(seeded_url, _rendered(q, key))) for q in lookup]
    assert counts
    assert all(counts)


def test_lookup_of_an_unknown_id_is_empty_not_an_error(seeded_url: str) -> None:
    """An unknown or hostile correlation ID yields no rows, quoted by the sqlstring format."""
    lookup = [q for uid, _, q in QUERIES if uid == "reeltrace-request-lookup"]
    for query in lookup:
        assert _run_as_reader(seeded_url, _rendered(query, "x' OR '1'='1")) == []


def test_active_requests_show_stage_progress_and_trace(seeded_url: str) -> None:
    """The live table lists pending and generating requests with stage, progress, age and trace id."""
    (query,) = [q for uid, what, q in QUERIES if what == "Active requests/A"]
    with psycopg.connect(seeded_url) as conn:
        conn.execute("SET ROLE reeltrace_reader")
        cur = conn.execute(_rendered(query, "").encode())
        columns = [c.name for c in cur.description or []]
        rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    assert {"correlation_id", "current_stage", "progress", "age", "trace_id"} <= set(columns)
    assert [r["correlation_id"] for r in rows] == [ACTIVE_CORRELATION, "vvd_1732312345679_cafebabe"]
    assert rows[0]["current_stage"] == "video_generation"
    assert rows[0]["progress"] == 25
    assert rows[0]["attempts"] == 2
    assert rows[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_recent_failures_carry_the_error_stage_and_message(seeded_url: str) -> None:
    """The failures table shows the failed request's error_stage and error_message."""
    (query,) = [q for uid, what, q in QUERIES if what == "Recent failures/A"]
    rows = _run_as_reader(seeded_url, _rendered(query, ""))
    assert len(rows) == 1
    assert "video_generation" in rows[0]
    assert "The model refused the prompt" in rows[0]


def test_oldest_generating_age_runs_from_the_start(seeded_url: str) -> None:
    """The live stat's oldest generating age is time since the start, not since creation: a
    request that queued for an hour and started two minutes ago reads two minutes, as the
    reeltrace_oldest_request_age_seconds gauge and the watchdog count it."""
    (query,) = [q for uid, what, q in QUERIES if what == "Pending and generating/A"]
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE video_requests SET created_at = now() - interval '1 hour' WHERE id = '{ACTIVE}'".encode()
        )
    with psycopg.connect(seeded_url) as conn:
        conn.execute("SET ROLE reeltrace_reader")
        cur = conn.execute(_rendered(query, "").encode())
        columns = [c.name for c in cur.description or []]
        (row,) = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    assert row["generating"] == 1
    assert 100 < row["oldest_generating_seconds"] < 600
