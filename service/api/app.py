"""The FastAPI application factory."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import errors, health, media, metrics, monitoring, requests, stream, users, webhooks
from service.api.body_limit import BodyLimitMiddleware
from service.api.deps import read_access
from service.auth.keys import KeyVerifier
from service.auth.repository import ApiKeyRepository
from service.db.urls import libpq_dsn
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.listener import EventHub
from service.web import assets, docs, pages
from service.web.session import SessionSigner, load_or_create_secret
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


def _attach(app: FastAPI, runtime: Runtime, settings: Settings) -> None:
    app.state.runtime = runtime
    app.state.keys = KeyVerifier(ApiKeyRepository(runtime.database), ttl=settings.api_key_cache_seconds)
    app.state.hub = EventHub(libpq_dsn(runtime.database_url))
    app.state.session_signer = SessionSigner(load_or_create_secret(settings.data_dir))


def _optional_router(app: FastAPI, module_name: str) -> None:
    """Include a router module that may not be part of this build (read scope)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    app.include_router(module.router, dependencies=[read_access])


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With `runtime` given (tests, `serve`), the caller owns its lifecycle."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        if owned:
            _attach(app, await Runtime.start(settings, source_service="api"), settings)
        try:
            yield
        finally:
            await app.state.hub.stop()
            if owned:
                await app.state.runtime.close()

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
    app.state.settings = settings
    if runtime is not None:
        _attach(app, runtime, settings)
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
