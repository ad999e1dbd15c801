"""Two API processes submitting for one guild at its budget's edge cannot overspend it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from service.db.urls import sqlalchemy_url
from tests.e2e.serve import ServeProcess, serve_env, start_serve_on_free_port

pytestmark = pytest.mark.slow

LIMIT = 4.0  # five requests of 0.80 fit, a sixth does not
SUBMISSIONS = 24


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Two `reeltrace serve` processes on one PostgreSQL, with the guild budget set."""
    started: list[ServeProcess] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            env = serve_env(
                {
                    "DATABASE_URL": database_url,
                    "REELTRACE_DATA_DIR": str(home / "data"),
                    "REELTRACE_API_KEYS_REQUIRED": "false",
                    "REELTRACE_BUDGET_GUILD_DAILY_USD": str(LIMIT),
                    "REELTRACE_RATE_LIMIT": "1000/minute",
                    # Nothing finishes during the test: every accepted request stays reserved.
                    "REELTRACE_SIM_LATENCY_SECONDS": "600",
                    "REELTRACE_LOG_LEVEL": "warning",
                }
            )
            started.append(start_serve_on_free_port(env, home / "serve.log"))
        yield started
    finally:
        for process in started:
            process.stop()


async def submit_everywhere(replicas: list[ServeProcess]) -> list[int]:
    clients = [httpx.AsyncClient(base_url=r.url, timeout=60) for r in replicas]
    try:

        async def one(index: int) -> int:
            client = clients[index % len(clients)]
            body = {"user_id": f"user-{index}", "guild_id": "edge", "prompt": f"a fox, take {index}"}
            return (await client.post("/api/v1/requests", json=body)).status_code

        return list(await asyncio.gather(*(one(i) for i in range(SUBMISSIONS))))
    finally:
        for client in clients:
            await client.aclose()


def test_two_api_processes_cannot_overspend_a_guild(replicas: list[ServeProcess], database_url: str) -> None:
    """Concurrent submissions through two processes accept exactly what the budget holds, no more."""
    codes = Counter(asyncio.run(submit_everywhere(replicas)))
    assert codes == {202: 5, 402: SUBMISSIONS - 5}
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            reserved = conn.execute(
                text("SELECT sum(estimated_cost_usd) FROM video_requests WHERE guild_id = 'edge'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert float(reserved) <= LIMIT
