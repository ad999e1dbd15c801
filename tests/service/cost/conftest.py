"""Apps over HTTP for the cost tests, built from any settings (price table, model, budgets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from service.app import create_app
from service.runtime import Runtime
from service.settings import Settings

# The API tests' fixtures (the app over HTTP, keys of each scope), shared here.
from tests.service.api.conftest import admin, app, client, make_key, reader, submitter
from tests.service.cli.conftest import cli

__all__ = ["admin", "app", "cli", "client", "make_key", "reader", "submitter"]

AppFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, Runtime]]]


@pytest.fixture
async def app_with(settings: Settings, database_url: str) -> AsyncIterator[AppFactory]:
    """`await app_with(**overrides)` -> an HTTP client of an app (and its runtime) on this database."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: object) -> tuple[httpx.AsyncClient, Runtime]:
            own = settings.model_copy(update=overrides)
            runtime = Runtime.build(own, database_url, source_service="test")
            stack.push_async_callback(runtime.close)
            app = create_app(own, runtime)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://reeltrace.test")
            await stack.enter_async_context(client)
            return client, runtime

        yield make
