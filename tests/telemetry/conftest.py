"""Tracing for telemetry tests: the real SDK with an in-memory exporter.

A tracer provider can be set once per process, so it is set once for the session
and each test clears the exporter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.app import create_app
from service.runtime import Runtime
from service.settings import Settings
from telemetry.tracing import configure_tracing

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def _tracing() -> InMemorySpanExporter:
    provider = configure_tracing("reeltrace-test", exporter=_EXPORTER, batch=False)
    assert provider is not None, "OTEL_SDK_DISABLED must not be set for these tests"
    return _EXPORTER


@pytest.fixture
def spans(_tracing: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The finished spans of this test only."""
    _tracing.clear()
    yield _tracing
    _tracing.clear()


@pytest.fixture
async def traced_app(
    settings: Settings, runtime: Runtime, spans: InMemorySpanExporter
) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"api_keys_required": False}), runtime)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(traced_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=traced_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reeltrace.test") as c:
        yield c
