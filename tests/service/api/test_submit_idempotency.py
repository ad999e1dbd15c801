"""A repeated `request_id`: the same body returns the original, other values are a 409."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from service.runtime import Runtime
from tests.service.api.conftest import Headers, body
from tests.support.sql import sql_engine


async def _rows(runtime: Runtime, request_id: str) -> int:
    async with sql_engine(runtime).connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM video_requests WHERE id = :id"), {"id": request_id}
        )
        return int(found.scalar_one())


async def test_the_same_body_again_returns_the_original(
    client: httpx.AsyncClient, submitter: Headers, runtime: Runtime
) -> None:
    """A byte-for-byte retry answers 202 with the first request and stores nothing more."""
    rid = str(uuid.uuid4())
    sent = body(request_id=rid, pipeline="lesson", topic="tides", callback_url="https://example.com/hook")
    first = await client.post("/api/v1/requests", json=sent, headers=submitter)
    again = await client.post("/api/v1/requests", json=sent, headers=submitter)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["created"] is False
    assert again.json()["correlation_id"] == first.json()["correlation_id"]
    assert await _rows(runtime, rid) == 1


async def test_other_values_are_a_409_naming_the_fields(
    client: httpx.AsyncClient, submitter: Headers, runtime: Runtime
) -> None:
    """The same id with another prompt and aspect ratio is a 409 naming exactly those two fields."""
    rid = str(uuid.uuid4())
    await client.post("/api/v1/requests", json=body(request_id=rid), headers=submitter)
    r = await client.post(
        "/api/v1/requests",
        json=body(request_id=rid, prompt="a whale at dawn", aspect_ratio="9:16"),
        headers=submitter,
    )
    assert r.status_code == 409
    assert r.json()["error"] == "request_id_conflict"
    detail = r.json()["detail"]
    assert detail.endswith(
        "other values of: prompt, aspect_ratio; send the same body to get that request, or a new request_id"
    )
    assert await _rows(runtime, rid) == 1


async def test_an_optional_field_sent_once_only_is_a_difference(
    client: httpx.AsyncClient, submitter: Headers
) -> None:
    """A callback_url added on the retry differs from its absence in the original."""
    rid = str(uuid.uuid4())
    await client.post("/api/v1/requests", json=body(request_id=rid), headers=submitter)
    r = await client.post(
        "/api/v1/requests",
        json=body(request_id=rid, callback_url="https://example.com/hook"),
        headers=submitter,
    )
    assert r.status_code == 409
    assert "other values of: callback_url;" in r.json()["detail"]
