"""Fixtures for API tests: the app over HTTP (httpx against ASGI), keys of each scope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.auth.keys import create_key
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from service.settings import Settings

Headers = dict[str, str]


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running, as under a server."""
    application = create_app(settings, runtime)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reeltrace.test") as c:
        yield c


@pytest.fixture
def make_key(runtime: Runtime) -> Callable[..., object]:
    """An async factory: `await make_key("read", "submit")` -> auth headers for a new key."""

    async def make(*scopes: str, name: str = "test") -> Headers:
        issued = await create_key(ApiKeyRepository(runtime.database), name, scopes)
        return {"Authorization": f"Bearer {issued.key}"}

    return make


@pytest.fixture
async def admin(make_key: Callable[..., object]) -> Headers:
    return await make_key("admin", name="admin")  # type: ignore[misc, no-any-return]


@pytest.fixture
async def submitter(make_key: Callable[..., object]) -> Headers:
    return await make_key("submit", name="submitter")  # type: ignore[misc, no-any-return]


@pytest.fixture
async def reader(make_key: Callable[..., object]) -> Headers:
    return await make_key("read", name="reader")  # type: ignore[misc, no-any-return]


def body(**overrides: object) -> dict[str, object]:
    """A valid submission, with overrides."""
    payload: dict[str, object] = {"user_id": "user-1", "guild_id": "guild-1", "prompt": "a fox in the snow"}
    payload.update(overrides)
    return payload
