"""Database work in a trace says what happened: tracking writes by name, reads by summary."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.runtime import Runtime
from telemetry.database import query_summary
from tests.telemetry.test_tracing import of_trace, run_worker_until_terminal, submit

STATEMENT_TEXT_KEYS = {"db.statement", "db.query.text"}


@pytest.mark.parametrize(
    ("sql", "summary"),
    [
        ("SELECT r.id FROM video_requests r WHERE r.id = %(id)s", "SELECT video_requests"),
        (
            "SELECT r.id, (SELECT json_agg(s.*) FROM request_stages s) FROM video_requests r",
            "SELECT request_stages video_requests",
        ),
        (
            "WITH upd AS (UPDATE video_requests SET status = 'x' RETURNING id) "
            "INSERT INTO request_events (request_id) SELECT id FROM upd",
            "UPDATE video_requests request_events",
        ),
        ("SELECT * FROM unnest(%(ids)s) AS t(id)", "SELECT"),
        (
            "INSERT INTO circuit_breaker_states (k) VALUES (1) ON CONFLICT (k) DO UPDATE SET k = 2",
            "INSERT circuit_breaker_states",
        ),
    ],
)
def test_query_summary_is_the_operation_and_its_tables(sql: str, summary: str) -> None:
    """A summary names the operation and the tables, never CTE names, functions or keywords."""
    assert query_summary(sql) == summary


def _stage(trace: list[ReadableSpan], name: str) -> ReadableSpan:
    return next(s for s in trace if s.name == f"stage {name}")


async def _lifecycle(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> list[ReadableSpan]:
    accepted = await submit(client)
    await run_worker_until_terminal(runtime, str(accepted["id"]))
    return of_trace(list(spans.get_finished_spans()), str(accepted["trace_id"]))


async def test_a_stage_write_is_an_event_on_its_stage_span(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """A stage attempt's span carries `tracking.stage_started` and `tracking.stage_completed`
    events with db.system, the table and the duration."""
    trace = await _lifecycle(client, runtime, spans)
    stage = _stage(trace, "validation")
    writes = {e.name: e for e in stage.events if e.name.startswith("tracking.")}
    assert {"tracking.stage_started", "tracking.stage_completed"} <= set(writes)
    for write in (writes["tracking.stage_started"], writes["tracking.stage_completed"]):
        assert write.attributes is not None
        assert write.attributes["db.system"] == "postgresql"
        assert write.attributes["db.collection.name"] == "request_stages"
        assert float(write.attributes["duration_ms"]) >= 0  # type: ignore[arg-type]


async def test_the_create_is_an_event_on_the_submitting_span(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """The HTTP span of a submission carries its `tracking.request_created` write."""
    await submit(client)
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    [created] = [e for e in server.events if e.name == "tracking.request_created"]
    assert created.attributes is not None
    assert created.attributes["db.collection.name"] == "video_requests"


async def test_a_write_between_stages_is_a_short_span_of_the_trace(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """The worker's status changes, outside any stage span, are `tracking.request_*` spans
    in the request's trace."""
    trace = await _lifecycle(client, runtime, spans)
    names = {s.name for s in trace}
    assert {"tracking.request_started", "tracking.request_completed"} <= names
    started = next(s for s in trace if s.name == "tracking.request_started")
    assert started.attributes is not None
    assert started.attributes["db.system"] == "postgresql"
    assert started.attributes["db.collection.name"] == "video_requests"
    assert started.end_time is not None
    assert started.start_time is not None
    assert started.end_time >= started.start_time


async def test_no_span_or_event_carries_statement_text(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """Neither a span nor an event of a whole lifecycle carries SQL text."""
    trace = await _lifecycle(client, runtime, spans)
    (await client.get(f"/api/v1/monitoring/requests/{trace[0].attributes['request.id']}")).raise_for_status()  # type: ignore[index]
    for span in spans.get_finished_spans():
        assert not STATEMENT_TEXT_KEYS & set(span.attributes or {}), span.name
        for event in span.events:
            assert not STATEMENT_TEXT_KEYS & set(event.attributes or {}), event.name


async def test_an_api_read_is_a_client_span_named_by_its_summary(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """Reading a request through the API is a CLIENT span, a child of the HTTP span, with
    `db.query.summary` as its name."""
    accepted = await submit(client)
    spans.clear()
    (await client.get(f"/api/v1/monitoring/requests/{accepted['id']}")).raise_for_status()
    finished = list(spans.get_finished_spans())
    [server] = [s for s in finished if s.kind == SpanKind.SERVER]
    reads = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert reads
    for read in reads:
        assert read.attributes is not None
        assert read.name == read.attributes["db.query.summary"]
        assert read.attributes["db.system"] == "postgresql"
        assert read.parent is not None
        assert read.parent.span_id == server.context.span_id  # type: ignore[union-attr]
    assert "SELECT request_stages video_requests" in {r.name for r in reads}
