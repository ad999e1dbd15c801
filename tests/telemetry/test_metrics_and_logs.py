"""Metrics exposition (plain and OpenMetrics with exemplars) and correlated, secret-free logs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from service.runtime import Runtime
from service.tracking.tracker import RequestTracker
from telemetry.logging import redact_text
from telemetry.metrics import Metrics, current_exemplar
from tests.conftest import require_tool
from tests.support.logs import json_logs
from tests.telemetry.test_tracing import run_worker_until_terminal, submit

FORBIDDEN_LABELS = {"user_id", "guild_id", "channel_id", "prompt", "request_id", "correlation_id", "trace_id"}


async def one_request(client: httpx.AsyncClient, runtime: Runtime) -> dict[str, object]:
    accepted = await submit(client)
    await run_worker_until_terminal(runtime, str(accepted["id"]))
    return accepted


async def test_plain_exposition_passes_promtool(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """`promtool check metrics` accepts the plain-text /metrics after a request has run."""
    promtool = require_tool("promtool", shutil.which("promtool"))
    await one_request(client, runtime)
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert "reeltrace_request_duration_seconds_bucket" in response.text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=response.text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # No `_created` series beside the counters and histograms (each would be stored apart).
    assert not [
        line for line in response.text.splitlines() if line.split("{")[0].split(" ")[0].endswith("_created")
    ]
    # Gzipped for a scraper that asks for it, as Prometheus does.
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "reeltrace_request_duration_seconds_bucket" in zipped.text  # httpx decompressed it


async def test_openmetrics_exposition_has_exemplars_of_real_traces(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    """Asked for OpenMetrics, histogram buckets carry trace_id exemplars of traces that exist."""
    accepted = await one_request(client, runtime)
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = re.findall(
        r'^(reeltrace_\w+_bucket)\{[^}]*\} \S+ # \{trace_id="([0-9a-f]{32})"\}', response.text, re.M
    )
    families = {name for name, _ in exemplars}
    assert {
        "reeltrace_request_duration_seconds_bucket",
        "reeltrace_stage_duration_seconds_bucket",
    } <= families
    known = {format(s.context.trace_id, "032x") for s in spans.get_finished_spans() if s.context}
    # This test's request left its trace as an exemplar, and that trace was really recorded.
    assert accepted["trace_id"] in {trace for _, trace in exemplars}
    assert str(accepted["trace_id"]) in known


def test_request_series_exist_at_zero_before_the_first_request(runtime: Runtime) -> None:
    """A tracker declares every pipeline's request counters and histograms at 0."""
    metrics = Metrics(CollectorRegistry())
    RequestTracker(
        runtime.tracker.repository,
        runtime.tracker.journal,
        pipelines=runtime.tracker.pipelines,
        metrics=metrics,
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }
    duration = tuple(sorted({"pipeline": "lesson", "status": "timeout", "aspect_ratio": "9:16"}.items()))
    assert samples[("reeltrace_request_duration_seconds_count", duration)] == 0
    assert samples[("reeltrace_request_queue_seconds_count", (("pipeline", "veo"),))] == 0
    assert samples[("reeltrace_requests_finished_total", (("pipeline", "veo"), ("status", "failed")))] == 0


def test_no_oldest_age_is_reported_before_a_watchdog_measures_it() -> None:
    """The oldest-request gauge has no series of its own in a process that runs no watchdog
    (`serve --no-worker`): a standing 0 there would read as "nothing waits"."""
    metrics = Metrics(CollectorRegistry())
    for status in ("pending", "generating"):
        assert (
            metrics.registry.get_sample_value("reeltrace_oldest_request_age_seconds", {"status": status})
            is None
        )


# The README's and telemetry/metrics.py's catalogue, written out here on its own: attribute
# of Metrics -> (family name as collected, type, label names).
CATALOGUE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests_created": ("reeltrace_requests_created", "counter", ("pipeline",)),
    "requests_finished": ("reeltrace_requests_finished", "counter", ("pipeline", "status")),
    "request_duration": (
        "reeltrace_request_duration_seconds",
        "histogram",
        ("pipeline", "status", "aspect_ratio"),
    ),
    "request_queue": ("reeltrace_request_queue_seconds", "histogram", ("pipeline",)),
    "stage_duration": ("reeltrace_stage_duration_seconds", "histogram", ("pipeline", "stage", "status")),
    "stage_retries": ("reeltrace_stage_retries", "counter", ("pipeline", "stage")),
    "requests_in_flight": ("reeltrace_requests_in_flight", "gauge", ("pipeline", "stage")),
    "oldest_request_age": ("reeltrace_oldest_request_age_seconds", "gauge", ("status",)),
    "circuit_breaker_state": ("reeltrace_circuit_breaker_state", "gauge", ("dependency",)),
    "external_calls": ("reeltrace_external_calls", "counter", ("dependency", "outcome")),
    "external_call_duration": ("reeltrace_external_call_duration_seconds", "histogram", ("dependency",)),
    "webhook_attempts": ("reeltrace_webhook_attempts", "counter", ("outcome",)),
    "uncertain_starts": ("reeltrace_generation_uncertain_starts", "counter", ("action",)),
    "generation_cost": ("reeltrace_generation_cost_usd", "counter", ("pipeline", "model", "outcome")),
    "generation_billable_seconds": (
        "reeltrace_generation_billable_seconds",
        "counter",
        ("pipeline", "model", "outcome"),
    ),
    "generation_unpriced": ("reeltrace_generation_unpriced", "counter", ("pipeline", "model")),
    "tracking_write_failures": ("reeltrace_tracking_write_failures", "counter", ("operation",)),
    "tracking_journal_pending": ("reeltrace_tracking_journal_pending", "gauge", ()),
}


def _catalogue_samples() -> dict[str, set[str]]:
    """A fresh registry with one series per labelled family: family name -> label names seen."""
    metrics = Metrics(CollectorRegistry())
    for attribute, (_, _, labels) in CATALOGUE.items():
        if labels:
            getattr(metrics, attribute).labels(**dict.fromkeys(labels, "x"))
    return {
        family.name: {label for s in family.samples for label in s.labels} - {"le"}
        for family in metrics.registry.collect()
    }


def test_the_metric_catalogue_is_exactly_the_documented_one() -> None:
    """Every family is declared with the documented name, type and label names, and no other exists."""
    metrics = Metrics(CollectorRegistry())
    types = {family.name: family.type for family in metrics.registry.collect()}
    assert types == {name: kind for name, kind, _ in CATALOGUE.values()}
    seen = _catalogue_samples()
    for name, _, labels in CATALOGUE.values():
        assert seen[name] == set(labels), name


def test_no_metric_has_an_unbounded_label() -> None:
    """No label of any declared family is a user, guild, prompt, request, correlation or trace ID."""
    seen = _catalogue_samples()
    assert set(seen) == {name for name, _, _ in CATALOGUE.values()}
    for name, labels in seen.items():
        assert not FORBIDDEN_LABELS & labels, (name, labels)


async def test_request_log_lines_carry_ids_and_trace_context(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Every line logged inside a request carries request_id, correlation_id, trace_id and span_id."""
    with json_logs() as lines:
        accepted = await one_request(client, runtime)
    inside = [line for line in lines() if line.get("request_id") == accepted["id"]]
    assert len(inside) > 10
    for line in inside:
        assert line["correlation_id"] == accepted["correlation_id"], line["event"]
        assert line["trace_id"] == accepted["trace_id"], line["event"]
        assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"]), line["event"]


async def test_api_keys_never_reach_the_logs(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """Neither a bearer key sent with a request nor one mentioned in an error is written out."""
    key = "rt_" + "k" * 40
    with json_logs() as lines:
        await client.post(
            "/api/v1/requests",
            json={"user_id": "t", "prompt": "leak test"},
            headers={"Authorization": f"Bearer {key}"},
        )
        await runtime.tracker.log_event(
            (await runtime.queries.user_history("t")).items[0].id,
            "note",
            f"called with Authorization: Bearer {key}",
        )
    assert lines()
    assert key not in str(lines())


def test_redaction_masks_credentials_and_signatures() -> None:
    """Signed-URL signatures, tokens and URL passwords are masked; the rest is kept."""
    url = "https://storage.googleapis.com/b/v.mp4?X-Goog-Credential=sa%40p&X-Goog-Signature=abcdef0123&X-Goog-Date=1"
    masked = redact_text(url)
    assert "abcdef0123" not in masked
    assert "sa%40p" not in masked
    assert "X-Goog-Date=1" in masked
    assert (
        redact_text("postgresql://reeltrace:s3cret@db:5432/x")
        == "postgresql://reeltrace:[REDACTED]@db:5432/x"
    )
    assert "ya29.tok" not in redact_text("Authorization: Bearer ya29.tok")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_separate_worker_serves_its_own_metrics(runtime: Runtime, tmp_path: Path) -> None:
    """`reeltrace worker` exposes its metrics on REELTRACE_METRICS_PORT, apart from the API's."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": runtime.database_url,
        "REELTRACE_DATA_DIR": str(tmp_path),
        "REELTRACE_METRICS_PORT": str(port),
        "REELTRACE_LOG_LEVEL": "warning",
        "OTEL_SDK_DISABLED": "true",
    }
    worker = subprocess.Popen([sys.executable, "-m", "service.cli.main", "worker"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the worker's metrics port never opened"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "reeltrace_circuit_breaker_state" in response.text
        assert "reeltrace_tracking_journal_pending" in response.text
        # Stage series exist at zero before the first attempt, so rate() sees the first one.
        assert (
            'reeltrace_stage_duration_seconds_count{pipeline="veo",stage="video_generation",status="failed"} 0.0'
            in response.text
        )
        assert (
            'reeltrace_requests_in_flight{pipeline="lesson",stage="script_generation"} 0.0' in response.text
        )
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0


def test_a_sampled_out_trace_is_no_exemplar() -> None:
    """A request dropped by the sampler keeps its trace ID in its row and logs, but an exemplar
    would link to a trace Jaeger never receives: none is attached (as the README says)."""
    dropped = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(0))
    with trace.use_span(trace.NonRecordingSpan(dropped)):
        assert current_exemplar() is None
    kept = trace.SpanContext(
        0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    with trace.use_span(trace.NonRecordingSpan(kept)):
        assert current_exemplar() == {"trace_id": format(0xABC, "032x")}
