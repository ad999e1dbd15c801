"""The dashboard and the hourly metrics over HTTP: estimated from the rollups, or exact on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from service.runtime import Runtime
from service.tracking.cost_tracking import BilledAttempt, Spend
from service.video_request import VideoRequest
from tests.service.api.conftest import Headers
from tests.support.sql import sql_engine

DURATIONS_MS = (12_000, 30_000, 31_000, 95_000)


async def completed_requests(runtime: Runtime) -> None:
    """Completed requests of known durations, created a few minutes ago."""
    tracker = runtime.tracker
    for i, duration_ms in enumerate(DURATIONS_MS):
        created_at = datetime.now(UTC) - timedelta(minutes=3 + i)
        tracker.clock = lambda at=created_at: at
        new = await tracker.create_request(VideoRequest(user_id="u", prompt="p"))
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


async def billed_request(runtime: Runtime, created_at: datetime, seconds: int) -> None:
    """A request created at `created_at`, billed `seconds` of output at $0.15 a second, completed."""
    tracker = runtime.tracker
    tracker.clock = lambda: created_at
    new = await tracker.create_request(VideoRequest(user_id="u", prompt="p"))
    await tracker.start_request(new.id)
    billed = BilledAttempt(
        pipeline="veo",
        model="veo-test",
        outcome="succeeded",
        seconds=Decimal(seconds),
        usd_per_second=Decimal("0.15"),
        price_version="test",
        attempt=1,
        operation_name=None,
    )
    await tracker.record_cost(new.id, Spend(), billed)
    tracker.clock = lambda: created_at + timedelta(seconds=30)
    await tracker.complete_request(new.id, ["https://cdn/v.mp4"])


async def rows_spend(runtime: Runtime, since: datetime) -> float:
    async with sql_engine(runtime).connect() as conn:
        total = await conn.execute(
            text("SELECT coalesce(sum(cost_usd), 0) FROM video_requests WHERE created_at >= :s"), {"s": since}
        )
        return float(total.scalar_one())


async def test_dashboard_spend_is_the_rows_sum_estimated_or_exact(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """spend_usd is SUM(cost_usd) of the window's requests, the same from the rollups and from the rows."""
    now = datetime.now(UTC)
    for minutes, seconds in ((3, 8), (40, 4), (200, 6)):
        await billed_request(runtime, now - timedelta(minutes=minutes), seconds)
    await billed_request(runtime, now - timedelta(hours=30), 8)  # outside the 24 h window
    estimated = (await client.get("/api/v1/monitoring/dashboard", headers=reader)).json()
    exact = (
        await client.get("/api/v1/monitoring/dashboard", params={"exact": "true"}, headers=reader)
    ).json()
    expected = await rows_spend(runtime, now - timedelta(hours=24))
    assert expected == pytest.approx(18 * 0.15)
    assert estimated["spend_usd"] == pytest.approx(expected)
    assert exact["spend_usd"] == pytest.approx(expected)


async def test_spend_today_counts_from_midnight_utc(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """spend_today_usd counts the requests created since 00:00 UTC and none from the day before."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await billed_request(runtime, midnight - timedelta(minutes=1), 8)  # yesterday, inside a 48 h window
    await billed_request(runtime, min(now - timedelta(seconds=40), midnight + timedelta(seconds=1)), 4)
    params = {"window_hours": "48"}
    estimated = (await client.get("/api/v1/monitoring/dashboard", params=params, headers=reader)).json()
    exact = (
        await client.get("/api/v1/monitoring/dashboard", params={**params, "exact": "true"}, headers=reader)
    ).json()
    assert estimated["spend_today_usd"] == pytest.approx(4 * 0.15)
    assert exact["spend_today_usd"] == pytest.approx(4 * 0.15)
    assert estimated["spend_usd"] == pytest.approx(12 * 0.15)


async def test_hourly_p50_is_estimated_within_the_bound(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Hourly buckets carry p50_duration_ms: percentile_cont's median with exact=true, within 1 % of it otherwise."""
    await completed_requests(runtime)
    estimated = (await client.get("/api/v1/monitoring/metrics", headers=reader)).json()
    exact = (await client.get("/api/v1/monitoring/metrics", params={"exact": "true"}, headers=reader)).json()
    assert [b["hour"] for b in estimated] == [b["hour"] for b in exact]
    async with sql_engine(runtime).connect() as conn:
        query = text(
            "SELECT date_bin(interval '1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00+00'),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)"
            " FROM video_requests WHERE status = 'completed' GROUP BY 1"
        )
        medians: dict[datetime, float] = {row[0]: row[1] for row in await conn.execute(query)}
    for e, x in zip(estimated, exact, strict=True):
        assert x["p50_duration_ms"] == medians[datetime.fromisoformat(x["hour"])]
        assert abs(e["p50_duration_ms"] - x["p50_duration_ms"]) <= 0.01 * x["p50_duration_ms"]


async def test_openapi_documents_the_spend_fields(client: httpx.AsyncClient) -> None:
    """The dashboard's OpenAPI description and schema name spend_usd and spend_today_usd."""
    spec = (await client.get("/openapi.json")).json()
    description = spec["paths"]["/api/v1/monitoring/dashboard"]["get"]["description"]
    properties = spec["components"]["schemas"]["DashboardRead"]["properties"]
    for field in ("spend_usd", "spend_today_usd"):
        assert field in description
        assert properties[field]["description"]
    assert "p50_duration_ms" in spec["components"]["schemas"]["HourlyBucket"]["properties"]
