"""API keys over HTTP: 401 without a valid key, 403 without the scope, open routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text

from service.api import requests as submit_routes
from service.api.deps import require_scope
from service.app import create_app
from service.auth.keys import Scope, revoke_key
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.conftest import Headers, body
from tests.support.sql import sql_engine

READ_ROUTES = [
    "/api/v1/monitoring/requests",
    "/api/v1/monitoring/dashboard",
    "/api/v1/monitoring/metrics",
    "/api/v1/monitoring/circuit-breakers",
    "/api/v1/users/u1/requests",
    "/api/v1/guilds/g1/stats",
    "/api/v1/monitoring/requests/00000000-0000-0000-0000-000000000000",
    "/api/v1/monitoring/requests/00000000-0000-0000-0000-000000000000/events",
    "/api/v1/monitoring/stream?request_id=00000000-0000-0000-0000-000000000000",
]


@pytest.mark.parametrize("path", READ_ROUTES)
async def test_read_routes_need_a_key(client: httpx.AsyncClient, path: str) -> None:
    """Every monitoring route answers 401 with WWW-Authenticate when no key is sent."""
    r = await client.get(path)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_submit_needs_a_key(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """POST without a key is 401 and stores nothing: no request, stage or event."""
    r = await client.post("/api/v1/requests", json=body())
    assert r.status_code == 401
    async with sql_engine(runtime).connect() as conn:
        counts = [
            (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("video_requests", "request_events", "request_stages")
        ]
    assert counts == [0, 0, 0]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer rt_thisisnotarealkeyatall0000000000000000", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer "],
)
async def test_unknown_or_malformed_keys_are_401(client: httpx.AsyncClient, authorization: str) -> None:
    """A key that is unknown, malformed or sent with another scheme is refused with 401."""
    r = await client.get("/api/v1/monitoring/dashboard", headers={"Authorization": authorization})
    assert r.status_code == 401
    assert set(r.json()) == {"error", "detail"}


async def test_read_key_cannot_submit(client: httpx.AsyncClient, reader: Headers) -> None:
    """A key without `submit` gets 403 on POST, naming the missing scope."""
    r = await client.post("/api/v1/requests", json=body(), headers=reader)
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "detail": "this API key lacks the `submit` scope"}


@pytest.mark.parametrize("path", READ_ROUTES[:6])
async def test_submit_key_cannot_read(client: httpx.AsyncClient, submitter: Headers, path: str) -> None:
    """A submit-only key gets 403 on monitoring routes."""
    r = await client.get(path, headers=submitter)
    assert r.status_code == 403


async def test_admin_implies_every_scope(client: httpx.AsyncClient, admin: Headers) -> None:
    """An admin key may submit and read."""
    r = await client.post("/api/v1/requests", json=body(), headers=admin)
    assert r.status_code == 202
    assert (await client.get(r.json()["links"]["self"], headers=admin)).status_code == 200


async def test_read_and_submit_key_does_both(client: httpx.AsyncClient, make_key: Any) -> None:
    """A key with read and submit scopes may submit and read."""
    headers = await make_key("read", "submit")
    r = await client.post("/api/v1/requests", json=body(), headers=headers)
    assert r.status_code == 202
    assert (await client.get("/api/v1/monitoring/dashboard", headers=headers)).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_open_routes_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    """Health, readiness, metrics and the API docs answer without a key."""
    assert (await client.get(path)).status_code == 200


async def test_revoked_key_is_refused(settings: Settings, runtime: Runtime, make_key: Any) -> None:
    """Once revoked (and past the verification cache), a key gets 401."""
    app = create_app(settings.model_copy(update={"api_key_cache_seconds": 0}), runtime)
    headers = await make_key("read")
    prefix = headers["Authorization"].removeprefix("Bearer ")[:11]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/api/v1/monitoring/dashboard", headers=headers)).status_code == 200
        await revoke_key(ApiKeyRepository(runtime.database), prefix)
        assert (await c.get("/api/v1/monitoring/dashboard", headers=headers)).status_code == 401


async def test_keys_not_required_acts_as_admin(settings: Settings, runtime: Runtime) -> None:
    """With REELTRACE_API_KEYS_REQUIRED=false every route works without a key."""
    app = create_app(settings.model_copy(update={"api_keys_required": False}), runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/requests", json=body())
        assert r.status_code == 202
        assert (await c.get(r.json()["links"]["self"])).status_code == 200


async def test_key_use_is_recorded(client: httpx.AsyncClient, reader: Headers, runtime: Runtime) -> None:
    """A verified key gets its last_used_at set."""
    await client.get("/api/v1/monitoring/dashboard", headers=reader)
    records = await ApiKeyRepository(runtime.database).list_all()
    assert [r.last_used_at is not None for r in records] == [True]


def test_a_protected_route_has_one_dependency_for_its_whole_authentication(settings: Settings) -> None:
    """Submitting resolves one dependency (key, then scope), which itself depends on nothing,
    and OpenAPI still documents the route's ApiKey bearer scheme."""
    app = create_app(settings)
    [route] = [r for r in submit_routes.router.routes if isinstance(r, APIRoute)]
    [auth] = route.dependant.dependencies
    assert auth.call is require_scope(Scope.SUBMIT)
    assert auth.dependencies == []
    schema = app.openapi()
    assert schema["paths"]["/api/v1/requests"]["post"]["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
