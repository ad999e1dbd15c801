"""Schemathesis over the OpenAPI schema of a live server: no 5xx, every answer as documented."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from analytics.export import export_snapshot
from service.auth.keys import create_key
from service.auth.repository import ApiKeyRepository
from service.db.urls import libpq_dsn
from service.runtime import Runtime
from service.settings import Settings
from service.video_request import VideoRequest
from tests.service.api.live import LiveServer, live_server
from tests.support.pg import PgCluster

pytestmark = pytest.mark.slow


async def _prepare(app_settings: Settings, url: str) -> str:
    """An admin key, a finished request, and an analytics snapshot of it (for guild stats)."""
    runtime = Runtime.build(app_settings, url, source_service="test")
    try:
        key = (await create_key(ApiKeyRepository(runtime.database), "fuzz", ["admin"])).key
        created = await runtime.tracker.create_request(
            VideoRequest(user_id="0", guild_id="0", prompt="a fox")
        )
        await runtime.tracker.start_request(created.id)
        await runtime.tracker.complete_request(created.id, ["https://cdn.example.com/0.mp4"])
    finally:
        await runtime.close()
    await asyncio.to_thread(export_snapshot, libpq_dsn(url), app_settings.snapshot_dir)
    return key


@pytest.fixture(scope="module")
def fuzz_server(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """A live server on its own database, and an admin key for it."""
    name = pg_cluster.new_database()
    url = pg_cluster.url(name)
    app_settings = Settings(database_url=url, data_dir=Path(tmp_path_factory.mktemp("fuzz")))
    key = asyncio.run(_prepare(app_settings, url))
    try:
        with live_server(app_settings) as server:
            yield server, key
    finally:
        pg_cluster.drop_database(name)


@pytest.mark.parametrize("authenticated", [True, False], ids=["admin-key", "no-key"])
def test_api_conforms_to_its_schema(fuzz_server: tuple[LiveServer, str], authenticated: bool) -> None:
    """Valid and invalid calls to every operation, with an admin key and with none, never get a 5xx,
    and every response (a 401 included) is one the schema documents."""
    server, key = fuzz_server
    # The stream never ends on its own (test_stream.py covers it).
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").exclude(
        path="/api/v1/monitoring/stream"
    )
    headers = {"Authorization": f"Bearer {key}"} if authenticated else {}
    checks = [not_a_server_error, response_schema_conformance]
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation, mode in itertools.product(operations, list(schemathesis.GenerationMode)):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.url, headers=headers, checks=checks)

        try:
            call()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid input to send.
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
