"""The monitoring routes' documented parameters over HTTP: the list's `pipeline` and `cursor`,
the dashboard's `window_hours`, the hourly metrics' `pipeline`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from service.runtime import Runtime
from service.video_request import VideoRequest
from tests.service.api.conftest import Headers
from tests.support.sql import sql_engine

LIST = "/api/v1/monitoring/requests"


async def completed(runtime: Runtime, pipeline: str = "veo", user_id: str = "p") -> uuid.UUID:
    """A request of `pipeline`, run to completed (its stages are not what these tests read)."""
    t = runtime.tracker
    created = await t.create_request(
        VideoRequest.model_construct(user_id=user_id, prompt="a lighthouse", pipeline=pipeline)
    )
    await t.start_request(created.id)
    await t.complete_request(created.id, ["https://cdn.example.com/v.mp4"])
    return created.id


async def list_ids(client: httpx.AsyncClient, reader: Headers, **params: Any) -> list[str]:
    r = await client.get(LIST, params=params, headers=reader)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def test_list_filters_by_pipeline(client: httpx.AsyncClient, reader: Headers, runtime: Runtime) -> None:
    """`pipeline=lesson` lists only lesson requests, `pipeline=veo` only veo ones; an unknown one is a 422."""
    veo = await completed(runtime, "veo")
    lesson = await completed(runtime, "lesson")
    assert await list_ids(client, reader, pipeline="lesson") == [str(lesson)]
    assert await list_ids(client, reader, pipeline="veo") == [str(veo)]
    r = await client.get(LIST, params={"pipeline": "opera"}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.pipeline"


async def test_list_cursor_walks_every_row_once(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """Following `next_cursor` page by page lists every matching request once, newest first, and
    keeps the filter; the last page has no cursor."""
    made = [
        (await runtime.tracker.create_request(VideoRequest(user_id="walk", prompt=f"p{i}"))).id
        for i in range(5)
    ]
    await runtime.tracker.create_request(VideoRequest(user_id="other", prompt="not listed"))
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, "user_id": "walk"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(LIST, params=params, headers=reader)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(made)]


async def test_dashboard_window_hours_widens_the_window(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """A request from 30 h ago is outside the default 24 h dashboard and inside `window_hours=48`;
    `window_hours=0` is a 422 naming the field."""
    old = await completed(runtime)
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(
            text("UPDATE video_requests SET created_at = now() - interval '30 hours' WHERE id = :id"),
            {"id": old},
        )
    await completed(runtime)
    url = "/api/v1/monitoring/dashboard"
    default = (await client.get(url, headers=reader)).json()
    wide = (await client.get(url, params={"window_hours": 48}, headers=reader)).json()
    assert (default["total_requests"], default["counts_by_status"]["completed"]) == (1, 1)
    assert (wide["total_requests"], wide["counts_by_status"]["completed"]) == (2, 2)
    r = await client.get(url, params={"window_hours": 0}, headers=reader)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.window_hours"


async def test_hourly_metrics_filter_by_pipeline(
    client: httpx.AsyncClient, reader: Headers, runtime: Runtime
) -> None:
    """`pipeline` narrows the hourly buckets to that pipeline's requests."""
    await completed(runtime, "veo")
    await completed(runtime, "veo")
    await completed(runtime, "lesson")
    url = "/api/v1/monitoring/metrics"

    async def total(**params: Any) -> int:
        r = await client.get(url, params=params, headers=reader)
        assert r.status_code == 200, r.text
        # Summed: the requests may straddle the turn of an hour.
        return sum(bucket["total_requests"] for bucket in r.json())

    assert await total() == 3
    assert await total(pipeline="veo") == 2
    assert await total(pipeline="lesson") == 1
