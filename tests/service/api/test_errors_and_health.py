"""The error shape for every 4xx/5xx, request ids, health, readiness and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from service.app import MAX_BODY_BYTES, create_app
from service.runtime import Runtime
from service.settings import Settings
from telemetry.metrics import get_metrics
from tests.service.api.conftest import Headers
from tests.support.logs import json_logs
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine


def _boom_app(settings: Settings, runtime: Runtime) -> FastAPI:
    app = create_app(settings, runtime)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/module.py line 12")

    return app


async def test_unhandled_error_is_a_safe_500(settings: Settings, runtime: Runtime) -> None:
    """A bug answers 500 in the error shape, reveals nothing, and is logged under the request id."""
    app = _boom_app(settings, runtime)
    with json_logs() as lines:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/boom")
    assert r.status_code == 500
    rid = r.headers["x-request-id"]
    assert r.json() == {
        "error": "internal_error",
        "detail": f"internal error; see logs with request id {rid}",
    }
    assert "hunter2" not in r.text
    assert "secret" not in r.text
    logged = lines("unhandled_error")
    assert logged
    assert logged[0]["http_request_id"] == rid
    assert "RuntimeError" in logged[0]["exception"]


async def test_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    """A sane X-Request-ID from the caller is returned; an absent one is generated."""
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


async def test_unknown_route_and_wrong_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    """404 for an unknown path and 405 for a wrong method come as {"error", "detail"}."""
    r = await client.get("/api/v1/nowhere")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await client.delete("/api/v1/requests")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    assert set(r.json()) == {"error", "detail"}


async def test_reads_answer_503_when_postgres_is_unreachable(settings: Settings) -> None:
    """With PostgreSQL down, reads answer 503 tracking_unavailable (not 500)."""
    down = settings.model_copy(
        update={"database_url": "postgresql://nobody@127.0.0.1:1/none", "api_keys_required": False}
    )
    rt = Runtime.build(down, down.database_url or "", source_service="test")
    try:
        app = create_app(down, rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/api/v1/monitoring/dashboard")
            ready = await c.get("/readyz")
    finally:
        await rt.close()
    assert r.status_code == 503
    assert r.json()["error"] == "tracking_unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert ready.json()["error"] == "not_ready"
    assert ready.json()["detail"].startswith("database unreachable")


async def test_key_check_answers_503_when_postgres_is_unreachable(settings: Settings) -> None:
    """A key never seen before cannot be checked without PostgreSQL: 503, not 401 or 500."""
    down = settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    rt = Runtime.build(down, down.database_url or "", source_service="test")
    try:
        app = create_app(down, rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get(
                "/api/v1/monitoring/dashboard", headers={"Authorization": "Bearer rt_" + "a" * 43}
            )
    finally:
        await rt.close()
    assert r.status_code == 503


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    """healthz is up; readyz reports the database reachable and at the head migration."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}
    for path in ("/healthz", "/readyz"):  # probes that send HEAD
        head = await client.head(path)
        assert (head.status_code, head.content) == (200, b"")


async def test_readyz_refuses_an_unmigrated_database(pg_cluster: PgCluster, settings: Settings) -> None:
    """A reachable database without the schema is not ready (503) and says to migrate."""
    name = pg_cluster.new_database(from_template=False)
    url = pg_cluster.url(name)
    rt = Runtime.build(settings, url, source_service="test")
    try:
        app = create_app(settings, rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/readyz")
    finally:
        await rt.close()
        pg_cluster.drop_database(name)
    assert r.status_code == 503
    assert r.json()["checks"]["database"] == "ok"
    assert "reeltrace migrate" in r.json()["checks"]["migrations"]
    assert (r.json()["error"], r.json()["detail"]) == (
        "not_ready",
        f"migrations {r.json()['checks']['migrations']}",
    )


async def test_metrics_plain_text_by_default(client: httpx.AsyncClient, admin: Headers) -> None:
    """/metrics serves the Prometheus text format from the project's registry."""
    get_metrics()  # the registry exists before the first scrape
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "reeltrace_requests_created_total" in r.text
    assert "# EOF" not in r.text


async def test_metrics_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    """With Accept: application/openmetrics-text the exposition is OpenMetrics (which carries exemplars)."""
    metrics = get_metrics()
    metrics.request_queue.labels(pipeline="veo").observe(0.2, {"trace_id": "a" * 32})
    r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    assert 'trace_id="' + "a" * 32 + '"' in r.text


async def test_an_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, runtime: Runtime, submitter: Headers
) -> None:
    """A body over the limit is a 413 in the error shape (declared, streamed, or without a key),
    and nothing is stored; a body of the largest valid size still goes through."""
    huge = b'{"user_id": "u", "prompt": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    headers = {**submitter, "content-type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(huge), 16384):
            yield huge[start : start + 16384]

    for sent in (
        await client.post("/api/v1/requests", content=huge, headers=headers),
        await client.post("/api/v1/requests", content=chunks(), headers=headers),
        await client.post("/api/v1/requests", content=huge, headers={"content-type": "application/json"}),
    ):
        assert sent.status_code == 413, sent.text
        assert sent.json() == {
            "error": "content_too_large",
            "detail": f"the request body is over the limit of {MAX_BODY_BYTES} bytes",
        }
    async with sql_engine(runtime).connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM video_requests"))).scalar() == 0
    # The largest valid submission: two 2000-character texts, every character \u-escaped.
    escaped = "\\u00e9" * 2000
    largest = f'{{"user_id": "u", "prompt": "{escaped}", "pipeline": "lesson", "topic": "t",'
    largest += f' "learning_objective": "{escaped}"}}'
    assert len(largest) < MAX_BODY_BYTES
    r = await client.post("/api/v1/requests", content=largest.encode(), headers=headers)
    assert r.status_code == 202, r.text
