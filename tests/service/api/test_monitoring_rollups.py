"""The dashboard and the hourly metrics over HTTP: estimated from the rollups, or exact on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from service.runtime import Runtime
from service.tracking.tracker import NewRequest
from tests.service.api.conftest import Headers

DURATIONS_MS = (12_000, 30_000, 31_000, 95_000)


async def completed_requests(runtime: Runtime) -> None:
    """Completed requests of known durations, created a few minutes ago."""
    tracker = runtime.tracker
    for i, duration_ms in enumerate(DURATIONS_MS):
        created_at = datetime.now(UTC) - timedelta(minutes=3 + i)
        tracker.clock = lambda at=created_at: at
        new = await tracker.create_request(NewRequest(user_id="u", prompt="p"))
        await tracker.start_request(new.id)
        tracker.clock = lambda at=created_at, ms=duration_ms: at + timedelta(milliseconds=ms)
        await tracker.complete_request(new.id, ["https://cdn/v.mp4"])


async def test_dashboard_percentiles_are_estimated_with_their_bound(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """By default the dashboard's percentiles are marked estimated, within 1 % of the exact ones."""
    await completed_requests(runtime)
    estimated = (await client.get("/api/v1/monitoring/dashboard", headers=reader)).json()
    exact = (
        await client.get("/api/v1/monitoring/dashboard", params={"exact": "true"}, headers=reader)
    ).json()
    assert (
        estimated["completed_latency"]["estimated"],
        estimated["completed_latency"]["relative_error"],
    ) == (
        True,
        0.01,
    )
    assert (exact["completed_latency"]["estimated"], exact["completed_latency"]["relative_error"]) == (
        False,
        None,
    )
    assert estimated["counts_by_status"] == exact["counts_by_status"]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert (
            abs(estimated["completed_latency"][key] - exact["completed_latency"][key])
            <= 0.01 * exact["completed_latency"][key]
        )


async def test_exact_dashboard_percentiles_are_those_of_the_rows(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """With exact=true the median is percentile_cont's: halfway between the two middle durations."""
    await completed_requests(runtime)
    exact = (
        await client.get("/api/v1/monitoring/dashboard", params={"exact": "true"}, headers=reader)
    ).json()
    assert exact["completed_latency"]["p50_ms"] == 30_500


async def test_hourly_metrics_say_which_p95_is_estimated(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Hourly buckets mark their P95 estimated by default and exact with exact=true, counts equal either way."""
    await completed_requests(runtime)
    estimated = (await client.get("/api/v1/monitoring/metrics", headers=reader)).json()
    exact = (await client.get("/api/v1/monitoring/metrics", params={"exact": "true"}, headers=reader)).json()
    assert {b["p95_estimated"] for b in estimated} == {True}
    assert {b["p95_estimated"] for b in exact} == {False}
    assert [b["completed"] for b in estimated] == [b["completed"] for b in exact]


async def test_exact_must_be_a_boolean(client: httpx.AsyncClient, reader: Headers) -> None:
    """exact=maybe is a 422 naming the query field."""
    r = await client.get("/api/v1/monitoring/dashboard", params={"exact": "maybe"}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.exact"


async def test_openapi_states_the_error_bound(client: httpx.AsyncClient) -> None:
    """The OpenAPI description of both routes says the percentiles are estimated within 1 % and how to get exact ones."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    for route in ("/api/v1/monitoring/dashboard", "/api/v1/monitoring/metrics"):
        operation = paths[route]["get"]
        assert "within 1 %" in operation["description"]
        assert "exact" in {p["name"] for p in operation["parameters"]}
