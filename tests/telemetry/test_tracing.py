"""One trace per request: the HTTP span, a span per stage attempt, CLIENT spans per call."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service.runtime import Runtime
from service.settings import Settings
from telemetry.tracing import EXPORT_BATCH_SIZE, batch_processor
from tests.support.otlp_receiver import otlp_receiver
from tests.support.pipelines import run_stages
from tests.support.sql import sql_engine
from tests.support.workers import running_worker


async def submit(client: httpx.AsyncClient, **extra: object) -> dict[str, object]:
    response = await client.post(
        "/api/v1/requests", json={"user_id": "t-user", "prompt": "a lighthouse at dawn", **extra}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def run_worker_until_terminal(runtime: Runtime, request_id: str, within: float = 20) -> None:
    async with running_worker(runtime), asyncio.timeout(within):
        while not (await runtime.queries.get_request(request_id)).status.is_terminal:
            await asyncio.sleep(0.02)


def of_trace(spans: list[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and format(s.context.trace_id, "032x") == trace_id]


async def test_request_is_one_trace_from_http_to_every_stage(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """The HTTP span and every stage attempt share the trace stored on the row; all carry correlation_id."""
    accepted = await submit(client)
    trace_id = str(accepted["trace_id"])
    await run_worker_until_terminal(runtime, str(accepted["id"]))
    row = await runtime.queries.get_request(str(accepted["id"]))
    assert row.trace_id == trace_id

    trace = of_trace(list(spans.get_finished_spans()), trace_id)
    server = [s for s in trace if s.kind == SpanKind.SERVER]
    stages = [s for s in trace if s.name.startswith("stage ")]
    assert [s.name for s in server] == ["POST /api/v1/requests"]
    assert sorted(s.name for s in stages) == sorted(f"stage {name}" for name in run_stages("veo"))
    assert {s.parent.span_id for s in stages if s.parent} == {server[0].context.span_id}  # type: ignore[union-attr]
    for span in trace:
        assert span.attributes is not None
        assert span.attributes.get("correlation_id") == accepted["correlation_id"], span.name
        assert span.attributes.get("request.id") == accepted["id"], span.name
        assert span.attributes.get("pipeline") == "veo", span.name
    for stage in stages:
        assert stage.attributes is not None
        assert stage.attributes["stage.name"] == stage.name.removeprefix("stage ")
        assert stage.attributes["stage.attempt"] == 1


async def test_scrapes_and_health_checks_are_not_traced(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    """/metrics, /healthz and /readyz make no server span; an API route makes one named after it."""
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await client.get(path)).status_code == 200
    assert [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER] == []
    assert (await client.get("/api/v1/monitoring/dashboard")).status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.name == "GET /api/v1/monitoring/dashboard"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200


async def test_generation_call_is_a_client_span_with_gen_ai_attributes(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """Starting the generation is a CLIENT span named `generate_content <model>` with gen_ai.* attributes."""
    accepted = await submit(client)
    await run_worker_until_terminal(runtime, str(accepted["id"]))
    trace = of_trace(list(spans.get_finished_spans()), str(accepted["trace_id"]))
    [start] = [s for s in trace if s.name.startswith("generate_content ")]
    assert start.kind == SpanKind.CLIENT
    assert start.attributes is not None
    assert start.attributes["gen_ai.operation.name"] == "generate_content"
    assert start.attributes["gen_ai.provider.name"] == "simulated"
    assert start.attributes["gen_ai.request.model"] == start.name.removeprefix("generate_content ")
    stage = next(s for s in trace if s.name == "stage video_generation")
    assert start.parent is not None
    assert start.parent.span_id == stage.context.span_id  # type: ignore[union-attr]


async def test_failure_marks_spans_as_errors_with_the_exception(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, spans: InMemorySpanExporter
) -> None:
    """A failing stage attempt has status ERROR and a recorded exception."""
    failing = Runtime.build(
        settings.model_copy(update={"sim_failure_rate": 1.0}), runtime.database_url, source_service="test"
    )
    try:
        accepted = await submit(client)
        await run_worker_until_terminal(failing, str(accepted["id"]))
    finally:
        await failing.close()
    trace = of_trace(list(spans.get_finished_spans()), str(accepted["trace_id"]))
    stage = next(s for s in trace if s.name == "stage video_generation")
    assert stage.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in stage.events)


async def test_a_resumed_attempt_links_to_the_one_before(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, spans: InMemorySpanExporter
) -> None:
    """A worker that resumes a stage another worker left runs the cut-off attempt again (a resume,
    not a retry: still attempt 1), its span linked to the first one's."""
    slow = settings.model_copy(
        update={"sim_latency_seconds": 30.0, "lease_seconds": 0.5, "worker_poll_seconds": 0.02}
    )
    first = Runtime.build(slow, runtime.database_url, source_service="test")
    accepted = await submit(client)
    # The worker goes away mid-generation (its leases are released on the way out).
    async with running_worker(first), asyncio.timeout(10):
        while not (await first.queries.get_request(str(accepted["id"]))).operation_name:
            await asyncio.sleep(0.02)
    await first.close()
    # A second worker, with the generation now finished, takes over.
    fast = Runtime.build(
        settings.model_copy(update={"sim_latency_seconds": 0.0}), runtime.database_url, source_service="test"
    )
    try:
        # The simulated job was started with a 30 s latency; make it due now.
        with sqlite3.connect(Path(settings.data_dir) / "sim" / "operations.sqlite3") as db:
            db.execute("UPDATE operations SET ready_at = 0")
        await run_worker_until_terminal(fast, str(accepted["id"]))
    finally:
        await fast.close()
    trace = of_trace(list(spans.get_finished_spans()), str(accepted["trace_id"]))
    attempts = sorted(
        (s for s in trace if s.name == "stage video_generation"), key=lambda s: s.start_time or 0
    )
    assert [s.attributes["stage.attempt"] for s in attempts if s.attributes] == [1, 1]
    [link] = attempts[1].links
    assert link.context.span_id == attempts[0].context.span_id  # type: ignore[union-attr]
    assert link.attributes is not None
    assert link.attributes["reeltrace.link"] == "previous_attempt"
    row = await runtime.queries.get_request(str(accepted["id"]))
    assert row.status == "completed"


async def test_worker_in_another_process_continues_the_trace(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    """A worker process picks the trace up from the stored traceparent: one trace, one trace_id."""
    accepted = await submit(client)
    trace_id = str(accepted["trace_id"])
    with otlp_receiver() as receiver:
        env = {
            **os.environ,
            "DATABASE_URL": runtime.database_url,
            "REELTRACE_DATA_DIR": str(tmp_path / "worker-data"),
            "REELTRACE_SIM_LATENCY_SECONDS": "0",
            "REELTRACE_SIM_JITTER_SECONDS": "0",
            "REELTRACE_POLL_INTERVAL_SECONDS": "0.02",
            "REELTRACE_WORKER_POLL_SECONDS": "0.05",
            "REELTRACE_METRICS_PORT": "0",
            "REELTRACE_LOG_LEVEL": "warning",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        env.pop("OTEL_SDK_DISABLED", None)
        worker = subprocess.Popen([sys.executable, "-m", "service.cli.main", "worker"], env=env)
        try:
            async with asyncio.timeout(30):
                while not (await runtime.queries.get_request(str(accepted["id"]))).status.is_terminal:
                    await asyncio.sleep(0.05)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        remote = [s for s in receiver.snapshot() if s.trace_id == trace_id]
    assert worker.returncode == 0
    local = of_trace(list(spans.get_finished_spans()), trace_id)
    [server] = [s for s in local if s.kind == SpanKind.SERVER]
    stages = [s for s in remote if s.name.startswith("stage ")]
    assert {s.service_name for s in remote} == {"reeltrace-worker"}
    assert sorted(s.name for s in stages) == sorted(f"stage {name}" for name in run_stages("veo"))
    assert {s.parent_span_id for s in stages} == {format(server.context.span_id, "016x")}  # type: ignore[union-attr]
    assert all(s.attributes.get("correlation_id") == accepted["correlation_id"] for s in remote)


def test_console_exporter_prints_spans(tmp_path: Path) -> None:
    """With OTEL_TRACES_EXPORTER=console, configure_tracing prints each finished span as JSON on stdout."""
    code = (
        "from telemetry.tracing import configure_tracing, shutdown_tracing\n"
        "from opentelemetry import trace\n"
        "assert configure_tracing('reeltrace-console') is not None\n"
        "with trace.get_tracer('t').start_as_current_span('stage validation'):\n"
        "    pass\n"
        "shutdown_tracing()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "console"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["name"] == "stage validation"
    assert printed["resource"]["attributes"]["service.name"] == "reeltrace-console"


def test_sdk_disabled_means_no_provider(tmp_path: Path) -> None:
    """With OTEL_SDK_DISABLED=true, configure_tracing installs nothing (the API stays no-op)."""
    code = (
        "from telemetry.tracing import configure_tracing, current_trace_ids\n"
        "from opentelemetry import trace\n"
        "assert configure_tracing() is None\n"
        "with trace.get_tracer('t').start_as_current_span('x'):\n"
        "    assert current_trace_ids() == (None, None)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


class BatchSizes(InMemorySpanExporter):
    """Remembers how many spans each export call carried."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.sizes.append(len(spans))
        return super().export(spans)


def export_batches(count: int) -> list[int]:
    exporter = BatchSizes()
    provider = TracerProvider()
    provider.add_span_processor(batch_processor(exporter))
    tracer = provider.get_tracer("batch-test")
    for n in range(count):
        tracer.start_span(f"span {n}").end()
    provider.force_flush()
    provider.shutdown()
    assert sum(exporter.sizes) == count
    return exporter.sizes


def test_spans_are_exported_in_small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", raising=False)
    sizes = export_batches(300)
    assert max(sizes) == EXPORT_BATCH_SIZE


def test_the_standard_batch_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    assert max(export_batches(50)) == 10


async def test_housekeeping_leaves_no_traces(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, spans: InMemorySpanExporter
) -> None:
    """An idle worker's claims, heartbeats and watchdog sweeps, and readiness probes, start no
    trace: Jaeger holds the requests' traces, not a root span per poll."""
    busy = settings.model_copy(
        update={"worker_poll_seconds": 0.02, "heartbeat_seconds": 0.05, "watchdog_interval_seconds": 0.05}
    )
    idle = Runtime.build(busy, runtime.database_url, source_service="test")
    try:
        async with sql_engine(idle).connect():
            pass  # SQLAlchemy's own queries on a new engine's first connection: once a process
        spans.clear()
        async with running_worker(idle) as (worker, _):
            await asyncio.sleep(0.5)
            assert await worker.claim_once() == 0
        for _ in range(3):
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await idle.close()
    assert [s.name for s in spans.get_finished_spans()] == []
