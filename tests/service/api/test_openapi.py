"""The OpenAPI document lists every status a route answers."""

from __future__ import annotations

from typing import Any

import pytest

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def spec(settings: Settings) -> dict[str, Any]:
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def test_every_api_route_documents_401_and_403(spec: dict[str, Any]) -> None:
    """Every /api/ operation needs a key, so each lists 401 (no key) and 403 (missing scope)."""
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        if path.startswith("/api/")
        for method, operation in operations.items()
        if not {"401", "403"} <= set(operation["responses"])
    ]
    assert missing == []


def test_guild_stats_documents_auth_and_snapshot_errors(spec: dict[str, Any]) -> None:
    """Guild stats lists 401 and 403 (its router carries the read scope) beside 422 and 503."""
    responses = spec["paths"]["/api/v1/guilds/{guild_id}/stats"]["get"]["responses"]
    assert {"200", "401", "403", "422", "503"} <= set(responses)


def test_media_documents_404(spec: dict[str, Any]) -> None:
    """/media lists its 404 in the error shape."""
    responses = spec["paths"]["/media/{path}"]["get"]["responses"]
    assert responses["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_time_parameters_are_date_times(spec: dict[str, Any]) -> None:
    """`since` and `until` are documented as strings of format date-time."""
    for path in ("/api/v1/monitoring/metrics", "/api/v1/monitoring/requests"):
        for parameter in spec["paths"][path]["get"]["parameters"]:
            if parameter["name"] in ("since", "until"):
                assert {"type": "string", "format": "date-time"} in parameter["schema"]["anyOf"]
