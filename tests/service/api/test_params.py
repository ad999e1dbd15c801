"""Date-time query parameters: ISO 8601 only, in a range windows can be computed in, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.service.api.conftest import Headers


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ["0.5", "1700000000", "yesterday", "2026-13-01T00:00:00Z"])
async def test_non_iso_values_are_refused(
    client: httpx.AsyncClient, reader: Headers, name: str, value: str
) -> None:
    """A number (a Unix timestamp to a lax parser) or any other non-ISO value is a 422 naming it."""
    answer = await client.get("/api/v1/monitoring/metrics", params={name: value}, headers=reader)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["detail"]] == [f"query.{name}"]


@pytest.mark.parametrize("name", ["since", "until"])
async def test_times_at_the_edge_of_the_calendar_are_refused(
    client: httpx.AsyncClient, reader: Headers, name: str
) -> None:
    """`0001-01-01T00:00:00Z` (whose 24-hour window overflowed into a 500) is a 422 naming the field."""
    answer = await client.get(
        "/api/v1/monitoring/metrics", params={name: "0001-01-01T00:00:00Z"}, headers=reader
    )
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["field"] == f"query.{name}"
    assert "between" in error["message"]


async def test_a_time_without_offset_is_utc(client: httpx.AsyncClient, reader: Headers) -> None:
    """A date-time without an offset is read as UTC (comparing it with now once raised a 500)."""
    answer = await client.get(
        "/api/v1/monitoring/metrics", params={"since": "2026-12-01T00:00:00"}, headers=reader
    )
    assert answer.status_code == 200


async def test_list_filter_takes_iso_date_times_only(client: httpx.AsyncClient, reader: Headers) -> None:
    """The request list's `since` takes an ISO date-time and refuses a number."""
    ok = await client.get(
        "/api/v1/monitoring/requests", params={"since": "2026-12-01T00:00:00Z"}, headers=reader
    )
    assert ok.status_code == 200
    bad = await client.get("/api/v1/monitoring/requests", params={"since": "0.5"}, headers=reader)
    assert bad.status_code == 422
