"""GET /api/v1/guilds/{guild_id}/stats: DuckDB over the latest snapshot, saying how recent it is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from analytics import queries
from analytics.export import export_snapshot
from analytics.reader import open_snapshot
from service.db.urls import libpq_dsn
from service.runtime import Runtime
from tests.analytics.datagen import generate
from tests.service.api.conftest import Headers


@pytest.fixture
async def client(app: FastAPI, reader: Headers) -> AsyncIterator[httpx.AsyncClient]:
    """The service's own app (create_app, keys required), called with a read-scope key."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=reader) as c:
        yield c


@pytest.fixture
def exported(runtime: Runtime) -> None:
    generate(libpq_dsn(runtime.database_url), 400, span_days=40, guilds=3)
    export_snapshot(libpq_dsn(runtime.database_url), runtime.settings.snapshot_dir)


@pytest.mark.usefixtures("exported")
async def test_stats_come_from_the_latest_snapshot(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """The answer holds the snapshot's buckets, counts and prompts, with its watermark and age."""
    response = await client.get("/api/v1/guilds/guild_0/stats", params={"bucket": "week"})

    assert response.status_code == 200
    body = response.json()
    with open_snapshot(runtime.settings.snapshot_dir) as snap:
        expected = queries.guild_stats(snap, "guild_0", "week")
    assert body["guild_id"] == "guild_0"
    assert body["bucket"] == "week"
    assert body["snapshot"]["version"] == expected.snapshot.version
    assert body["snapshot"]["watermark"].startswith(expected.snapshot.watermark.strftime("%Y-%m-%dT%H:%M:%S"))
    assert 0 <= body["snapshot"]["age_seconds"] < 600
    assert [b["bucket_start"] for b in body["buckets"]] == [
        b.bucket_start.isoformat() for b in expected.buckets
    ]
    assert [b["by_status"] for b in body["buckets"]] == [b.by_status for b in expected.buckets]
    first = body["buckets"][0]
    assert first["total"] == sum(first["by_status"].values())
    assert [p["prompt"] for p in first["top_prompts"]] == [p.prompt for p in expected.buckets[0].top_prompts]
    assert len(first["top_prompts"]) <= 10


@pytest.mark.usefixtures("exported")
async def test_bucket_defaults_to_day(client: httpx.AsyncClient) -> None:
    """Without `bucket`, the figures are per UTC day."""
    body = (await client.get("/api/v1/guilds/guild_1/stats")).json()
    assert body["bucket"] == "day"
    assert len(body["buckets"]) > 20


@pytest.mark.usefixtures("exported")
async def test_a_bad_bucket_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    """`bucket=year` is refused with 422 and the error names `query.bucket`."""
    response = await client.get("/api/v1/guilds/guild_0/stats", params={"bucket": "year"})
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert [d["field"] for d in response.json()["detail"]] == ["query.bucket"]


@pytest.mark.usefixtures("exported")
async def test_an_unknown_guild_has_no_buckets(client: httpx.AsyncClient) -> None:
    """A guild without requests answers 200 with an empty list, not an error."""
    response = await client.get("/api/v1/guilds/nobody/stats")
    assert response.status_code == 200
    assert response.json()["buckets"] == []


async def test_no_snapshot_yet_is_a_clear_503(client: httpx.AsyncClient) -> None:
    """Before the first export the route answers 503 `snapshot_unavailable`, saying how to make one."""
    response = await client.get("/api/v1/guilds/guild_0/stats")
    assert response.status_code == 503
    assert response.json()["error"] == "snapshot_unavailable"
    assert "reeltrace export" in response.json()["detail"]


@pytest.mark.usefixtures("exported")
async def test_an_unreadable_snapshot_is_a_503(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """A snapshot whose data files are damaged answers 503, not 500."""
    for path in runtime.settings.snapshot_dir.rglob("*.parquet"):
        path.write_bytes(b"damaged")
    response = await client.get("/api/v1/guilds/guild_0/stats")
    assert response.status_code == 503
    assert "cannot be read" in response.json()["detail"]
