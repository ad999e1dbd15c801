"""Fixtures for callback delivery tests: quick retries, a receiver, a closed port."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from service.runtime import Runtime
from service.settings import Settings
from tests.support.callback import CallbackServer
from tests.support.sql import sql_engine


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    """Retries a few milliseconds apart, and a worker that sweeps often."""
    return settings.model_copy(
        update={"worker_poll_seconds": 0.02, "webhook_retry_base_seconds": 0.01, "webhook_timeout_seconds": 2}
    )


@pytest.fixture
def receiver() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


async def delivery_rows(runtime: Runtime, request_id: uuid.UUID) -> list[dict[str, object]]:
    async with sql_engine(runtime).connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM webhook_deliveries WHERE request_id = :id ORDER BY created_at"),
            {"id": request_id},
        )
        return [dict(row._mapping) for row in result]
