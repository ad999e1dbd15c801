"""Cost on the request, through HTTP and a real worker on a real PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.conftest import Headers, body
from tests.service.cost.conftest import AppFactory
from tests.support.backends import failing_once_backends
from tests.support.workers import run_to_end

FAST_720P = 0.10  # veo-3.1-fast-generate-001, 720p, no audio, in the shipped table


async def submit(client: httpx.AsyncClient, headers: Headers, **fields: object) -> uuid.UUID:
    response = await client.post("/api/v1/requests", json=body(**fields), headers=headers)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def detail(client: httpx.AsyncClient, headers: Headers, rid: uuid.UUID) -> dict[str, object]:
    response = await client.get(f"/api/v1/monitoring/requests/{rid}", headers=headers)
    assert response.status_code == 200
    data: dict[str, object] = response.json()
    return data


async def cost_events(client: httpx.AsyncClient, headers: Headers, rid: uuid.UUID) -> list[dict[str, object]]:
    response = await client.get(f"/api/v1/monitoring/requests/{rid}/events", headers=headers)
    return [e for e in response.json() if e["event_type"] == "cost_recorded"]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a /metrics exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            sample, value = line.rsplit(" ", 1)
            found = ",".join(sorted(sample[len(name) + 1 : -1].split(",")))
            if found == want:
                return float(value)
    return 0.0


async def test_completed_request_carries_its_cost(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    """A completed 8 s 720p request costs 8 s at the table's price, with the table's version."""
    rid = await submit(client, admin)
    await run_to_end(runtime, [rid])
    read = await detail(client, admin, rid)
    assert read["status"] == "completed"
    assert read["cost_usd"] == pytest.approx(8 * FAST_720P)
    assert read["billable_seconds"] == 8
    assert read["estimated_cost_usd"] == pytest.approx(8 * FAST_720P)
    assert str(read["price_version"]).startswith("2026-12-05+")


async def test_cost_recorded_event_carries_the_attempt(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    """The event log has one cost_recorded event per billed attempt, with its figures."""
    rid = await submit(client, admin, generate_audio=True, resolution="1080p", duration_seconds=4)
    await run_to_end(runtime, [rid])
    [event] = await cost_events(client, admin, rid)
    data = event["data"]
    assert isinstance(data, dict)
    assert data["outcome"] == "succeeded"
    assert data["billable_seconds"] == 4
    assert data["attempt_cost_usd"] == pytest.approx(4 * 0.15)
    assert data["cost_usd"] == pytest.approx(4 * 0.15)


async def test_retried_generation_is_billed_for_both_attempts(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime, settings: Settings
) -> None:
    """An operation that ran and failed, then a retry that succeeded, cost twice."""
    rid = await submit(client, admin)
    await run_to_end(runtime, [rid], backends=failing_once_backends(settings))
    read = await detail(client, admin, rid)
    assert read["status"] == "completed"
    assert read["billable_seconds"] == 16
    assert read["cost_usd"] == pytest.approx(2 * 8 * FAST_720P)
    outcomes = [e["data"]["outcome"] for e in await cost_events(client, admin, rid)]  # type: ignore[index]
    assert outcomes == ["failed", "succeeded"]


async def test_request_that_billed_nothing_costs_zero(
    admin: Headers, app_with: AppFactory, settings: Settings
) -> None:
    """A request refused by the model at every start (429s) ends failed at a cost of 0, not null."""
    client, runtime = await app_with(sim_quota_error_rate=1.0, max_retries=0)
    rid = await submit(client, admin)
    await run_to_end(runtime, [rid])
    read = await detail(client, admin, rid)
    assert read["status"] == "failed"
    assert read["cost_usd"] == 0
    assert read["billable_seconds"] == 0


async def test_price_table_change_reprices_only_new_requests(
    admin: Headers, app_with: AppFactory, tmp_path: Path
) -> None:
    """A request submitted before a new price table keeps the old price; one after gets the new one."""
    old_client, _ = await app_with()
    before = await submit(old_client, admin)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        'version = "raised"\n[video."veo-3.1-fast-generate-001"]\nusd_per_second = { "720p" = 0.5 }\n'
    )
    new_client, new_runtime = await app_with(prices_file=prices)
    after = await submit(new_client, admin)
    await run_to_end(new_runtime, [before, after])  # the worker has the new table
    old, new = await detail(new_client, admin, before), await detail(new_client, admin, after)
    assert old["cost_usd"] == pytest.approx(8 * FAST_720P)
    assert new["cost_usd"] == pytest.approx(8 * 0.5)
    assert str(new["price_version"]).startswith("raised+")
    assert old["price_version"] != new["price_version"]


async def test_model_missing_from_the_table_is_flagged(admin: Headers, app_with: AppFactory) -> None:
    """An unpriced model leaves cost null, logs a warning cost_recorded event and counts it in /metrics."""
    client, runtime = await app_with(veo_model="veo-9-imaginary")
    labels = {"pipeline": "veo", "model": "veo-9-imaginary"}
    before = metric((await client.get("/metrics")).text, "reeltrace_generation_unpriced_total", **labels)
    rid = await submit(client, admin)
    await run_to_end(runtime, [rid])
    read = await detail(client, admin, rid)
    assert read["status"] == "completed"
    assert read["cost_usd"] is None
    assert read["estimated_cost_usd"] is None
    assert read["billable_seconds"] == 8
    [event] = await cost_events(client, admin, rid)
    assert event["severity"] == "warning"
    assert event["data"]["priced"] is False  # type: ignore[index]
    after = metric((await client.get("/metrics")).text, "reeltrace_generation_unpriced_total", **labels)
    assert after == before + 1
