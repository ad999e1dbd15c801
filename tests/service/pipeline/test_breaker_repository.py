"""Breaker states cross processes: workers publish them, the API folds what live workers published."""

from __future__ import annotations

from dataclasses import replace

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from service.app import create_app
from service.pipeline.breaker import BreakerBoard
from service.pipeline.breaker_repository import BreakerRepository
from service.runtime import Runtime
from service.settings import Settings
from tests.support.sql import sql_engine


async def open_breaker(board: BreakerBoard, dependency: str) -> None:
    breaker = board[dependency]
    for _ in range(breaker.failure_threshold):
        await breaker.before_call()
        await breaker.record_failure()


async def read_breakers(app: FastAPI) -> dict[str, dict[str, object]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v1/monitoring/circuit-breakers")
    assert response.status_code == 200, response.text
    return {entry["dependency"]: entry for entry in response.json()}


async def test_api_folds_breakers_published_by_workers(settings: Settings, runtime: Runtime) -> None:
    """One worker's open breaker shows as open; counts add up over the workers that published."""
    store = BreakerRepository(runtime.database)
    first, second = BreakerBoard(failure_threshold=2), BreakerBoard(failure_threshold=2)
    await open_breaker(first, "generation")
    await second["generation"].before_call()
    await second["generation"].record_success()
    await store.publish("worker-a", first.snapshot())
    await store.publish("worker-b", second.snapshot())
    app = create_app(settings.model_copy(update={"api_keys_required": False}), runtime)
    breakers = await read_breakers(app)
    assert breakers["generation"]["state"] == "open"
    assert breakers["generation"]["processes"] == 2
    assert (breakers["generation"]["failure_count"], breakers["generation"]["success_count"]) == (2, 1)
    assert breakers["storage"]["state"] == "closed"


async def test_states_of_workers_that_stopped_publishing_age_out(
    settings: Settings, runtime: Runtime
) -> None:
    """A worker gone for longer than three heartbeats no longer counts; the API falls back to its own."""
    store = BreakerRepository(runtime.database)
    board = BreakerBoard(failure_threshold=1)
    await open_breaker(board, "notification")
    await store.publish("worker-gone", board.snapshot())
    async with sql_engine(runtime).begin() as conn:
        await conn.execute(text("UPDATE circuit_breaker_states SET updated_at = now() - interval '1 hour'"))
    app = create_app(settings.model_copy(update={"api_keys_required": False}), runtime)
    app.state.parts = replace(app.state.parts, breakers=BreakerBoard())
    breakers = await read_breakers(app)
    assert breakers["notification"]["state"] == "closed"
    assert breakers["notification"]["processes"] == 1


async def test_publishing_again_updates_in_place(runtime: Runtime) -> None:
    """A worker's later publication replaces its earlier one (one row per worker and dependency)."""
    store = BreakerRepository(runtime.database)
    board = BreakerBoard(failure_threshold=1)
    await store.publish("w", board.snapshot())
    await open_breaker(board, "storage")
    await store.publish("w", board.snapshot())
    current = {row["dependency"]: row for row in await store.current(60)}
    assert current["storage"]["state"] == "open"
    assert current["storage"]["processes"] == 1
