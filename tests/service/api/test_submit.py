"""POST /api/v1/requests over HTTP, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy import text

from service.api.schemas import RequestAccepted
from service.app import create_app
from service.runtime import Runtime
from service.settings import Settings
from service.wiring import assemble_api
from tests.service.api.conftest import Headers, body
from tests.support.sql import sql_engine


async def count_requests(runtime: Runtime, user_id: str) -> int:
    async with sql_engine(runtime).connect() as conn:
        result = await conn.execute(
            text("SELECT count(*) FROM video_requests WHERE user_id = :u"), {"u": user_id}
        )
        return int(result.scalar_one())


async def test_accepts_a_request_with_202_and_links(client: httpx.AsyncClient, submitter: Headers) -> None:
    """A valid submission answers 202 with id, correlation_id, status, trace_id and links."""
    r = await client.post("/api/v1/requests", json=body(), headers=submitter)
    assert r.status_code == 202
    data = r.json()
    assert set(data) >= {"id", "correlation_id", "status", "trace_id", "links"}
    assert data["status"] == "pending"
    assert data["created"] is True
    assert data["correlation_id"].startswith("vvd_")
    assert data["links"]["self"] == f"/api/v1/monitoring/requests/{data['id']}"
    assert data["links"]["stream"].endswith(f"request_id={data['id']}")
    assert r.headers["location"] == data["links"]["self"]


async def test_stores_parameters_and_pipeline_extras(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    """Video parameters land in columns; callback, topic and objective in `parameters`."""
    payload = body(
        pipeline="lesson",
        topic="Photosynthesis",
        learning_objective="Explain how plants make sugar",
        duration_seconds=6,
        aspect_ratio="9:16",
        resolution="1080p",
        generate_audio=True,
        callback_url="https://hooks.example.com/done",
        seed=42,
    )
    r = await client.post("/api/v1/requests", json=payload, headers=admin)
    assert r.status_code == 202
    stored = await runtime.queries.get_request(r.json()["id"])
    assert (stored.pipeline, stored.duration_seconds, stored.aspect_ratio, stored.resolution) == (
        "lesson",
        6,
        "9:16",
        "1080p",
    )
    assert stored.generate_audio is True
    assert stored.parameters == {
        "callback_url": "https://hooks.example.com/done",
        "topic": "Photosynthesis",
        "learning_objective": "Explain how plants make sugar",
        "seed": 42,
    }
    assert [s.name for s in stored.stages][:3] == ["validation", "rag_retrieval", "script_generation"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": "   "}, "body.prompt"),
        ({"prompt": "x" * 2001}, "body.prompt"),
        ({"prompt": "nul \u0000 byte"}, "body.prompt"),
        ({"guild_id": "tab\there"}, "body.guild_id"),
        ({"user_id": ""}, "body.user_id"),
        ({"user_id": "u" * 65}, "body.user_id"),
        ({"duration_seconds": 5}, "body.duration_seconds"),
        ({"aspect_ratio": "4:3"}, "body.aspect_ratio"),
        ({"resolution": "4k"}, "body.resolution"),
        ({"pipeline": "cartoon"}, "body.pipeline"),
        ({"callback_url": "not a url"}, "body.callback_url"),
        ({"request_id": "1234"}, "body.request_id"),
        ({"pipeline": "lesson"}, "body.topic"),
        ({"topic": "Cells"}, "body.topic"),
        ({"colour": "blue"}, "body.colour"),
    ],
)
async def test_invalid_input_names_the_field(
    client: httpx.AsyncClient, submitter: Headers, overrides: dict[str, Any], field: str
) -> None:
    """Bad input is a 422 whose detail names the offending field."""
    r = await client.post("/api/v1/requests", json=body(**overrides), headers=submitter)
    assert r.status_code == 422
    data = r.json()
    assert data["error"] == "validation_error"
    assert field in [d["field"] for d in data["detail"]]
    assert not [d for d in data["detail"] if "^[" in d["message"]]  # a reason, never a raw pattern


async def test_missing_prompt_and_broken_json_are_422(client: httpx.AsyncClient, submitter: Headers) -> None:
    """A missing required field and an unparsable body are both 422s in the error shape."""
    r = await client.post("/api/v1/requests", json={"user_id": "u"}, headers=submitter)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["detail"]] == ["body.prompt"]
    r = await client.post(
        "/api/v1/requests", content=b"{not json", headers={**submitter, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"] == "validation_error"
    [broken] = r.json()["detail"]
    assert broken["field"] == "body"  # not the character offset where a field name goes
    assert broken["message"].startswith("invalid JSON at character 1: ")


async def test_a_body_not_sent_as_json_is_415(client: httpx.AsyncClient, submitter: Headers) -> None:
    """A body in another format (or with no Content-Type) is the wrong kind of body: 415, not 422."""
    raw = json.dumps(body()).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**submitter, **({"Content-Type": content_type} if content_type else {})}
        r = await client.post("/api/v1/requests", content=raw, headers=headers)
        assert r.status_code == 415, (content_type, r.text)
        assert r.json()["error"] == "unsupported_media_type"
        assert (content_type or "no Content-Type") in r.json()["detail"]
    r = await client.post(
        "/api/v1/requests", content=raw, headers={**submitter, "Content-Type": "application/json"}
    )
    assert r.status_code == 202
    r = await client.post(
        "/api/v1/requests", content=b"[1]", headers={**submitter, "Content-Type": "application/json"}
    )
    assert r.status_code == 422  # JSON, but not an object: invalid input, not a wrong format


async def test_prompt_is_trimmed(client: httpx.AsyncClient, submitter: Headers, runtime: Runtime) -> None:
    """Surrounding whitespace is removed before the prompt's length is checked and stored."""
    r = await client.post("/api/v1/requests", json=body(prompt="  a cat  "), headers=submitter)
    assert r.status_code == 202
    assert (await runtime.queries.get_request(r.json()["id"])).prompt == "a cat"


async def test_repeated_request_id_returns_the_original(
    client: httpx.AsyncClient, submitter: Headers, runtime: Runtime
) -> None:
    """Sending the same client UUID twice returns the first request and stores one row."""
    rid = str(uuid.uuid4())
    first = await client.post(
        "/api/v1/requests", json=body(request_id=rid, user_id="idem"), headers=submitter
    )
    second = await client.post(
        "/api/v1/requests", json=body(request_id=rid, user_id="idem"), headers=submitter
    )
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == rid
    assert second.json()["correlation_id"] == first.json()["correlation_id"]
    assert second.json()["created"] is False
    assert await count_requests(runtime, "idem") == 1


async def test_request_id_of_another_user_is_a_conflict(
    client: httpx.AsyncClient, submitter: Headers
) -> None:
    """A client UUID already used by a different user answers 409 and reveals nothing of it."""
    rid = str(uuid.uuid4())
    await client.post("/api/v1/requests", json=body(request_id=rid, user_id="alice"), headers=submitter)
    r = await client.post("/api/v1/requests", json=body(request_id=rid, user_id="mallory"), headers=submitter)
    assert r.status_code == 409
    assert r.json()["error"] == "request_id_conflict"
    assert "correlation_id" not in r.text


async def test_rate_limit_answers_429_with_retry_after_and_stores_nothing(
    settings: Settings, runtime: Runtime, make_key: Any
) -> None:
    """Past REELTRACE_RATE_LIMIT a user gets 429 with Retry-After; the rejected request is not stored."""
    app = create_app(settings.model_copy(update={"rate_limit": "2/minute"}), runtime)
    headers = await make_key("submit")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = [
            (await c.post("/api/v1/requests", json=body(user_id="busy"), headers=headers)).status_code
            for _ in range(2)
        ]
        limited = await c.post("/api/v1/requests", json=body(user_id="busy"), headers=headers)
        other = await c.post("/api/v1/requests", json=body(user_id="calm"), headers=headers)
    assert codes == [202, 202]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 202
    assert await count_requests(runtime, "busy") == 2


async def test_rate_limit_holds_across_replicas(settings: Settings, runtime: Runtime, make_key: Any) -> None:
    """Two app instances on one database share one per-user count."""
    limited_settings = settings.model_copy(update={"rate_limit": "3/minute"})
    headers = await make_key("submit")
    replicas = [create_app(limited_settings, runtime) for _ in range(2)]
    codes = []
    for i in range(5):
        app = replicas[i % 2]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            codes.append(
                (await c.post("/api/v1/requests", json=body(user_id="shared"), headers=headers)).status_code
            )
    assert codes == [202, 202, 202, 429, 429]


async def test_degraded_submission_is_accepted_and_run_in_process(settings: Settings) -> None:
    """With PostgreSQL unreachable the POST still answers 202 (degraded), and the app's in-process
    runner (serve's LocalRuns) runs that very request to completion, its writes journaled."""
    down = settings.model_copy(
        update={"database_url": "postgresql://nobody@127.0.0.1:1/none", "api_keys_required": False}
    )
    rt = Runtime.build(down, down.database_url or "", source_service="test")
    processing = assemble_api(rt, worker=False)
    runs = processing.degraded_runner
    assert runs is not None
    app: FastAPI = create_app(down, rt, processing=processing)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post("/api/v1/requests", json=body(callback_url="https://h.example.com/x"))
        assert r.status_code == 202, r.text
        [task] = runs.tasks
        assert task.get_name() == f"local-{r.json()['id']}"
        assert await asyncio.wait_for(task, 30) == "completed"
        journaled = rt.journal.pending_count()
    finally:
        await processing.aclose()
        await rt.close()
    data = r.json()
    assert data["degraded"] is True
    assert data["status"] == "pending"
    # The create, and then the run's own history (start, stages, events), wait for replay.
    assert journaled > 5
    assert (down.data_dir / "media" / "requests" / data["id"] / "sample_0.mp4").is_file()


async def test_trace_link_uses_jaeger_url(settings: Settings, runtime: Runtime, make_key: Any) -> None:
    """With REELTRACE_JAEGER_URL and an active span, links.trace points at the trace in Jaeger."""
    from opentelemetry.sdk.trace import TracerProvider

    app = create_app(settings.model_copy(update={"jaeger_url": "http://jaeger:16686/"}), runtime)
    headers = await make_key("submit", "read")
    tracer = TracerProvider().get_tracer("test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        with tracer.start_as_current_span("client"):
            r = await c.post("/api/v1/requests", json=body(), headers=headers)
        detail = await c.get(r.json()["links"]["self"], headers=headers)
    trace_id = r.json()["trace_id"]
    assert trace_id is not None
    assert len(trace_id) == 32
    assert r.json()["links"]["trace"] == f"http://jaeger:16686/trace/{trace_id}"
    assert detail.json()["trace_id"] == trace_id
    assert detail.json()["links"]["trace"] == r.json()["links"]["trace"]


async def test_the_answer_is_the_model_serialized_by_alias_with_its_headers_in_order(
    client: httpx.AsyncClient, submitter: Headers
) -> None:
    """The 202 body is RequestAccepted as FastAPI's own serializer writes it (by alias,
    compact), with Content-Length, Content-Type, Location and X-Request-ID in that order."""
    r = await client.post("/api/v1/requests", json=body(), headers=submitter)
    model = RequestAccepted.model_validate(r.json())
    assert r.content == TypeAdapter(RequestAccepted).dump_json(model, by_alias=True)
    assert [name for name, _ in r.headers.multi_items()] == [
        "content-length",
        "content-type",
        "location",
        "x-request-id",
    ]
    assert r.headers["content-type"] == "application/json"
