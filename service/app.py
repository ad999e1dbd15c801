"""The FastAPI application: the API's routes and the monitoring page, served from one
`ServiceParts` (service/wiring.py)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import errors, health, media, metrics, monitoring, requests, stream, users, webhooks
from service.api.body_limit import BodyLimitMiddleware
from service.api.deps import read_access
from service.runtime import Runtime
from service.settings import Settings
from service.web import assets, docs, pages
from service.wiring import Processing, ServiceParts, service_parts
from telemetry.tracing import http_telemetry

DESCRIPTION = """
Submit generative-video requests and follow each one through its stages.

**Authentication.** Send an API key as `Authorization: Bearer rt_...`. Keys carry
scopes: `submit` (POST requests), `read` (every monitoring route and the stream)
and `admin` (everything). Create one with `reeltrace keys create --scopes read,submit`;
the first `reeltrace serve` on the embedded database prints an admin key once.
`/metrics`, `/healthz` and `/readyz` need no key. With
`REELTRACE_API_KEYS_REQUIRED=false` (a local demo stack only) every route acts as
if an admin key were sent.

**Errors.** Every 4xx and 5xx answer is `{"error": <code>, "detail": ...}`; a 422
lists each offending field (`body.prompt`, `query.limit`, ...); a 429 carries
`Retry-After`; a body over 64 KiB is refused with 413 before it is read.
"""

# Several times the largest valid submission (its two 2000-character texts fully
# \u-escaped are 24 KiB): a bigger body is refused as it arrives, not parsed first.
MAX_BODY_BYTES = 64 * 1024


def _optional_router(app: FastAPI, module_name: str) -> None:
    """Include a router module that may not be part of this build (read scope)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    app.include_router(module.router, dependencies=[read_access])


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, processing: Processing | None = None
) -> FastAPI:
    """Build the app. With `runtime` given (tests, `serve`), the caller owns its lifecycle,
    and that of `processing` (`serve`: the pipeline this process runs requests with)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        if owned:
            app.state.parts = service_parts(settings, await Runtime.start(settings, source_service="api"))
        parts: ServiceParts = app.state.parts
        try:
            yield
        finally:
            await parts.hub.stop()
            if owned:
                await parts.runtime.close()

    app = FastAPI(
        title="reeltrace",
        version="0.1.0",
        summary="Tracked, observable generative-video requests.",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=http_telemetry(),
        # Served by service.web.docs from the package's own copies (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    if runtime is not None:
        # The one thing the app keeps: its parts, read by the dependencies of api/deps.py.
        app.state.parts = service_parts(settings, runtime, processing)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(errors.RequestIdMiddleware)  # the outermost: a 413 carries its id too
    for module in (health, metrics, requests, monitoring, stream, users, webhooks, media):
        app.include_router(module.router)
    _optional_router(app, "service.api.guilds")
    for web in (pages, docs):
        app.include_router(web.router)
    app.mount(assets.STATIC_URL, assets.static_files(), name="static")
    return app
