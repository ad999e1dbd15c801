"""Monitoring reads over HTTP: detail, events, lists, history, dashboard, metrics, breakers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from service.pipeline.breaker import DEPENDENCIES, BreakerBoard
from service.runtime import Runtime
from service.video_request import VideoRequest
from service.worker.repository import WorkRepository
from tests.service.api.conftest import Headers
from tests.support.pipelines import run_stages, stage_names


async def run_to_completion(runtime: Runtime, user_id: str = "u1", guild_id: str = "g1") -> uuid.UUID:
    t = runtime.tracker
    created = await t.create_request(VideoRequest(user_id=user_id, guild_id=guild_id, prompt="a lighthouse"))
    await t.start_request(created.id)
    for stage in run_stages("veo"):
        await t.start_stage(created.id, stage)
        await t.complete_stage(created.id, stage)
    await t.complete_request(created.id, ["https://cdn.example.com/v.mp4"])
    return created.id


async def run_to_failure(runtime: Runtime, user_id: str = "u1") -> uuid.UUID:
    t = runtime.tracker
    created = await t.create_request(VideoRequest(user_id=user_id, guild_id="g2", prompt="a storm"))
    await t.start_request(created.id)
    await t.start_stage(created.id, "validation")
    await t.complete_stage(created.id, "validation")
    await t.start_stage(created.id, "video_generation")
    await t.fail_stage(created.id, "video_generation", "quota exceeded")
    await t.fail_request(created.id, "quota exceeded", error_stage="video_generation")
    return created.id


async def test_request_detail_has_the_status_shape(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Detail by UUID carries stages, progress, video URLs and trace id; an ended request is in no stage."""
    rid = await run_to_completion(runtime)
    r = await client.get(f"/api/v1/monitoring/requests/{rid}", headers=reader)
    assert r.status_code == 200
    data = r.json()
    assert data["id"] == str(rid)
    assert data["status"] == "completed"
    assert data["progress_percentage"] == 100
    assert data["current_stage"] is None
    assert data["video_urls"] == ["https://cdn.example.com/v.mp4"]
    assert "trace_id" in data
    assert [s["name"] for s in data["stages"]] == stage_names("veo")
    first = data["stages"][0]
    assert set(first) >= {
        "name",
        "status",
        "started_at",
        "completed_at",
        "duration_seconds",
        "attempts",
        "error_message",
    }
    assert first["status"] == "completed"
    assert first["duration_seconds"] is not None


async def test_an_open_request_reports_the_stage_it_is_in(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """While a request runs, current_stage names the stage started last."""
    t = runtime.tracker
    created = await t.create_request(VideoRequest(user_id="u1", prompt="a lighthouse"))
    await t.start_request(created.id)
    await t.start_stage(created.id, "validation")
    await t.complete_stage(created.id, "validation")
    await t.start_stage(created.id, "video_generation")
    r = await client.get(f"/api/v1/monitoring/requests/{created.id}", headers=reader)
    assert r.json()["current_stage"] == "video_generation"


async def test_the_notification_after_the_end_is_not_the_current_stage(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """The notification stage runs after the terminal status; the ended request stays in no stage."""
    for rid in (await run_to_completion(runtime), await run_to_failure(runtime)):
        await runtime.tracker.start_stage(rid, "notification")
        await runtime.tracker.complete_stage(rid, "notification")
        r = await client.get(f"/api/v1/monitoring/requests/{rid}", headers=reader)
        assert (r.json()["status"], r.json()["current_stage"]) in {("completed", None), ("failed", None)}


async def test_notification_due_while_a_worker_holds_an_ended_request(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """An ended request held by a worker whose notification has not run says it is due, until it has run."""
    t = runtime.tracker
    created = await t.create_request(VideoRequest(user_id="u1", prompt="a lighthouse"))
    work = WorkRepository(runtime.database)
    await work.claim("worker-1", 10, 60)
    await t.start_request(created.id)
    await t.complete_request(created.id, ["https://cdn.example.com/v.mp4"])
    url = f"/api/v1/monitoring/requests/{created.id}"
    assert (await client.get(url, headers=reader)).json()["notification_due"] is True
    await t.start_stage(created.id, "notification")
    await t.complete_stage(created.id, "notification")
    assert (await client.get(url, headers=reader)).json()["notification_due"] is False


async def test_no_notification_is_due_without_a_worker(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """An ended request no worker holds owes no notification: none is coming."""
    rid = await run_to_completion(runtime)
    data = (await client.get(f"/api/v1/monitoring/requests/{rid}", headers=reader)).json()
    assert [s["status"] for s in data["stages"] if s["name"] == "notification"] == ["pending"]
    assert data["notification_due"] is False


async def test_request_detail_by_correlation_id_shows_errors(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Detail by correlation ID of a failed request names the error and the failed stage."""
    rid = await run_to_failure(runtime)
    correlation = (await runtime.queries.get_request(rid)).correlation_id
    r = await client.get(f"/api/v1/monitoring/requests/{correlation}", headers=reader)
    assert r.status_code == 200
    data = r.json()
    assert data["id"] == str(rid)
    assert (data["status"], data["error_message"], data["error_stage"]) == (
        "failed",
        "quota exceeded",
        "video_generation",
    )
    failed = next(s for s in data["stages"] if s["name"] == "video_generation")
    assert failed["error_message"] == "quota exceeded"


async def test_unknown_request_is_404(client: httpx.AsyncClient, reader: Headers) -> None:
    """An unknown UUID, correlation ID or garbage key is a 404 in the error shape."""
    for key in (str(uuid.uuid4()), "vvd_1700000000000_deadbeef", "nothing-like-an-id"):
        r = await client.get(f"/api/v1/monitoring/requests/{key}", headers=reader)
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        r = await client.get(f"/api/v1/monitoring/requests/{key}/events", headers=reader)
        assert r.status_code == 404


async def test_events_timeline_and_after_id(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Events come oldest first; after_id pages on from a given event."""
    rid = await run_to_completion(runtime)
    r = await client.get(f"/api/v1/monitoring/requests/{rid}/events", headers=reader)
    assert r.status_code == 200
    events = r.json()
    assert events[0]["event_type"] == "request_created"
    assert events[-1]["event_type"] == "request_completed"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    r = await client.get(
        f"/api/v1/monitoring/requests/{rid}/events", params={"after_id": ids[2], "limit": 2}, headers=reader
    )
    assert [e["id"] for e in r.json()] == ids[3:5]


async def test_list_filters_by_status_user_guild_and_since(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """The list applies status, user_id, guild_id and since filters, newest first."""
    done = await run_to_completion(runtime, user_id="a", guild_id="g1")
    failed = await run_to_failure(runtime, user_id="b")
    url = "/api/v1/monitoring/requests"

    async def ids(**params: Any) -> list[str]:
        r = await client.get(url, params=params, headers=reader)
        assert r.status_code == 200
        return [item["id"] for item in r.json()["items"]]

    assert await ids() == [str(failed), str(done)]
    assert await ids(status="completed") == [str(done)]
    assert await ids(user_id="b") == [str(failed)]
    assert await ids(guild_id="g1") == [str(done)]
    assert await ids(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    r = await client.get(url, params={"status": "exploded"}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.status"


async def test_user_history_pages_with_offset_and_cursor(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """User history is newest first; limit/offset and the returned cursor walk the same order."""
    made = [
        (await runtime.tracker.create_request(VideoRequest(user_id="hist", prompt=f"p{i}"))).id
        for i in range(5)
    ]
    await runtime.tracker.create_request(VideoRequest(user_id="someone-else", prompt="x"))
    newest_first = [str(i) for i in reversed(made)]
    url = "/api/v1/users/hist/requests"
    page1 = (await client.get(url, params={"limit": 2}, headers=reader)).json()
    assert [i["id"] for i in page1["items"]] == newest_first[:2]
    page2 = (
        await client.get(url, params={"limit": 2, "cursor": page1["next_cursor"]}, headers=reader)
    ).json()
    assert [i["id"] for i in page2["items"]] == newest_first[2:4]
    by_offset = (await client.get(url, params={"limit": 2, "offset": 2}, headers=reader)).json()
    assert [i["id"] for i in by_offset["items"]] == newest_first[2:4]
    pending = (await client.get(url, params={"status": "completed"}, headers=reader)).json()
    assert pending["items"] == []


async def test_bad_cursor_and_limit_name_the_query_field(client: httpx.AsyncClient, reader: Headers) -> None:
    """A cursor the API never returned and an out-of-range limit are 422s naming the query field."""
    r = await client.get("/api/v1/users/x/requests", params={"cursor": "%%%"}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.cursor"
    r = await client.get("/api/v1/users/%00/requests", headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "path.user_id"
    r = await client.get("/api/v1/users/x/requests", params={"limit": 0}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.limit"


async def test_dashboard_counts_and_percentiles(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """The dashboard counts the last 24 h by status, with failure rate and active requests."""
    await run_to_completion(runtime)
    await run_to_failure(runtime)
    await runtime.tracker.create_request(VideoRequest(user_id="u", prompt="waiting"))
    r = await client.get("/api/v1/monitoring/dashboard", headers=reader)
    assert r.status_code == 200
    data = r.json()
    assert data["total_requests"] == 3
    assert data["counts_by_status"]["completed"] == 1
    assert data["counts_by_status"]["failed"] == 1
    assert data["failure_rate_pct"] == 50.0
    assert data["active_requests"] == 1
    assert data["completed_latency"]["p50_ms"] is not None


async def test_hourly_metrics_buckets(client: httpx.AsyncClient, reader: Headers, runtime: Runtime) -> None:
    """Hourly metrics return a bucket for the current hour with its counts."""
    await run_to_completion(runtime)
    r = await client.get("/api/v1/monitoring/metrics", headers=reader)
    assert r.status_code == 200
    buckets = r.json()
    assert len(buckets) == 1
    assert (buckets[0]["total_requests"], buckets[0]["completed"]) == (1, 1)
    bad = await client.get(
        "/api/v1/monitoring/metrics",
        params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        headers=reader,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "query.since"


async def test_circuit_breakers_empty_without_breakers(client: httpx.AsyncClient, reader: Headers) -> None:
    """Without breakers registered the endpoint answers an empty list."""
    r = await client.get("/api/v1/monitoring/circuit-breakers", headers=reader)
    assert r.status_code == 200
    assert r.json() == []


async def test_circuit_breakers_report_the_board(
    app: FastAPI, client: httpx.AsyncClient, reader: Headers
) -> None:
    """The pipeline's breakers are reported with state and counts; an opened one shows as open."""
    board = BreakerBoard(failure_threshold=2, reset_seconds=30)
    app.state.parts = replace(app.state.parts, breakers=board)
    for _ in range(2):
        await board["generation"].before_call()
        await board["generation"].record_failure()
    r = await client.get("/api/v1/monitoring/circuit-breakers", headers=reader)
    assert r.status_code == 200
    by_name = {b["dependency"]: b for b in r.json()}
    assert set(by_name) == set(DEPENDENCIES)
    generation = by_name["generation"]
    assert (generation["state"], generation["failure_count"], generation["call_count"]) == ("open", 2, 2)
    assert generation["opened_at"] is not None
    assert all(b["state"] == "closed" for name, b in by_name.items() if name != "generation")
