"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import health
from service.runtime import Runtime
from service.settings import Settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With `runtime` given (tests, `serve`), the caller owns its lifecycle."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or await Runtime.start(settings, source_service="api")
        app.state.runtime = rt
        try:
            yield
        finally:
            if owned:
                await rt.close()

    app = FastAPI(
        title="reeltrace",
        version="0.1.0",
        summary="Tracked, observable generative-video requests.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app
