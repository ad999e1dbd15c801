"""The product's own export path: `reeltrace serve --no-worker` and `reeltrace worker`,
configured only by `OTEL_*` variables, send their spans to an OTLP/HTTP receiver.

The API samples one trace in two (`OTEL_TRACES_SAMPLER=parentbased_traceidratio`);
the worker keeps the SDK's default sampler, so it drops a request's stage spans only
because it follows the sampled flag of the `traceparent` stored on the row.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from service.db.urls import libpq_dsn
from tests.e2e.serve import serve_env
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.pg import PgCluster
from tests.support.pipelines import run_stages
from tests.support.prometheus import free_port

pytestmark = pytest.mark.slow

REQUESTS = 24  # at a 0.5 ratio, all kept or all dropped has odds of 1 in 8 million
SERVER_SPAN = "POST /api/v1/requests"
STAGES = sorted(f"stage {name}" for name in run_stages("veo"))


@dataclass(frozen=True)
class Exported:
    """What one API process and one worker process exported for REQUESTS submissions."""

    accepted: list[dict[str, Any]]
    rows: dict[str, str | None]  # request id -> trace_id stored on its row
    spans: list[ReceivedSpan]
    paths: list[str]
    content_types: list[str]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", *args],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, so the process flushes its queued spans on the way out."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"serve not ready:\n{log.read_text(errors='replace')[-3000:]}")


def _wait_terminal(dsn: str, ids: list[str], within: float = 60) -> dict[str, str | None]:
    deadline = time.monotonic() + within
    while True:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id::text, status::text, trace_id FROM video_requests WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        if len(rows) == len(ids) and all(r[1] in {"completed", "failed", "timeout"} for r in rows):
            return {r[0]: r[2] for r in rows}
        assert time.monotonic() < deadline, f"requests not terminal: {rows}"
        time.sleep(0.1)


def _run(receiver: OtlpReceiver, database_url: str, root: Path) -> Exported:
    common = {
        "DATABASE_URL": database_url,
        "REELTRACE_API_KEYS_REQUIRED": "false",
        "REELTRACE_SIM_LATENCY_SECONDS": "0",
        "REELTRACE_SIM_JITTER_SECONDS": "0",
        "REELTRACE_POLL_INTERVAL_SECONDS": "0.02",
        "REELTRACE_WORKER_POLL_SECONDS": "0.05",
        "REELTRACE_LOG_LEVEL": "warning",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    port = free_port()
    api_env = serve_env(
        {
            **common,
            "REELTRACE_DATA_DIR": str(root / "api"),
            "REELTRACE_PORT": str(port),
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.5",
        }
    )
    worker_env = serve_env(
        {**common, "REELTRACE_DATA_DIR": str(root / "worker"), "REELTRACE_METRICS_PORT": "0"}
    )
    api = _spawn(["serve", "--no-worker"], api_env, root / "api.log")
    worker = _spawn(["worker"], worker_env, root / "worker.log")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, api, root / "api.log")
        accepted = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for n in range(REQUESTS):
                body = {
                    "user_id": f"otlp-{n}",
                    "prompt": "a lighthouse at dawn",
                    "request_id": str(uuid.uuid4()),
                }
                response = client.post("/api/v1/requests", json=body)
                assert response.status_code == 202, response.text
                accepted.append(response.json())
        rows = _wait_terminal(libpq_dsn(database_url), [a["id"] for a in accepted])
    finally:
        _stop(worker)
        _stop(api)
    assert (api.returncode, worker.returncode) == (0, 0)
    return Exported(accepted, rows, receiver.snapshot(), list(receiver.paths), list(receiver.content_types))


@pytest.fixture(scope="module")
def exported(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """One API and one worker process, their spans received over OTLP/HTTP."""
    name = pg_cluster.new_database()
    root = tmp_path_factory.mktemp("otlp")
    try:
        with otlp_receiver() as receiver:
            yield _run(receiver, pg_cluster.url(name), root)
    finally:
        pg_cluster.drop_database(name)


def _traces_with(exported: Exported, service: str, name: str) -> set[str]:
    return {s.trace_id for s in exported.spans if s.service_name == service and s.name == name}


def test_the_api_exports_its_http_spans_over_otlp(exported: Exported) -> None:
    """The API process sends protobuf to /v1/traces: each kept submission's server span, in its trace."""
    assert set(exported.paths) == {"/v1/traces"}
    assert set(exported.content_types) == {"application/x-protobuf"}
    kept = _traces_with(exported, "reeltrace-api", SERVER_SPAN)
    assert kept
    assert kept <= {str(a["trace_id"]) for a in exported.accepted}


def test_the_worker_exports_stage_spans_in_the_api_trace(exported: Exported) -> None:
    """The worker process sends each kept request's stage spans, children of the API's server span."""
    checked = 0
    for accepted in exported.accepted:
        trace_id = str(accepted["trace_id"])
        trace = [s for s in exported.spans if s.trace_id == trace_id]
        servers = [s for s in trace if s.name == SERVER_SPAN]
        if not servers:
            continue
        stages = [s for s in trace if s.name.startswith("stage ")]
        assert sorted(s.name for s in stages) == STAGES
        assert {s.service_name for s in stages} == {"reeltrace-worker"}
        assert {s.parent_span_id for s in stages} == {servers[0].span_id}
        assert all(s.attributes.get("correlation_id") == accepted["correlation_id"] for s in stages)
        checked += 1
    assert checked, "no kept request to check"


def test_ratio_sampling_keeps_or_drops_each_request_whole(exported: Exported) -> None:
    """With a 0.5 ratio some requests are kept and some dropped; a worker on the default sampler
    exports stage spans for exactly the requests whose API span was kept."""
    kept_by_api = _traces_with(exported, "reeltrace-api", SERVER_SPAN)
    kept_by_worker = {s.trace_id for s in exported.spans if s.service_name == "reeltrace-worker"}
    everything = {str(a["trace_id"]) for a in exported.accepted}
    assert kept_by_api, "no request was sampled"
    assert kept_by_api != everything, "no request was dropped"
    assert kept_by_worker == kept_by_api


def test_a_dropped_request_still_stores_its_trace_id(exported: Exported) -> None:
    """Every request, kept or dropped by the sampler, has the trace ID it was answered with on its row."""
    assert exported.rows == {str(a["id"]): str(a["trace_id"]) for a in exported.accepted}
