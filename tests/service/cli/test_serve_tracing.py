"""`reeltrace serve` with a Jaeger URL: it says when its trace links lead nowhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serve import ServeProcess, serve_env, start_serve_on_free_port

pytestmark = pytest.mark.slow

JAEGER = "http://127.0.0.1:16686"


@pytest.fixture
def jaeger_serve(database_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """serve on the test database with REELTRACE_JAEGER_URL set and no OTEL exporter."""
    env = serve_env(
        {
            "DATABASE_URL": database_url,
            "REELTRACE_DATA_DIR": str(tmp_path / "data"),
            "REELTRACE_JAEGER_URL": JAEGER,
            "REELTRACE_LOG_FORMAT": "json",
        }
    )
    serve = start_serve_on_free_port(env, tmp_path / "serve.log")
    try:
        yield serve
    finally:
        serve.stop()


def _events(serve: ServeProcess) -> list[dict[str, object]]:
    lines = serve.log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_jaeger_url_without_an_exporter_is_warned_at_start(jaeger_serve: ServeProcess) -> None:
    """A Jaeger URL with no trace exporter logs one warning at start naming the missing setting."""
    warnings = [e for e in _events(jaeger_serve) if e["event"] == "traces_not_exported"]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in str(warnings[0]["detail"])


def test_readyz_says_traces_are_not_exported_and_stays_ready(jaeger_serve: ServeProcess) -> None:
    """/readyz stays 200 and ready, and its checks say the trace links lead to no trace."""
    r = httpx.get(f"{jaeger_serve.url}/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["traces"].startswith("not exported: REELTRACE_JAEGER_URL is set")


def test_readyz_traces_check_is_ok_with_an_exporter(database_url: str, tmp_path: Path) -> None:
    """With an OTLP endpoint configured, the traces check is ok and nothing is warned."""
    env = serve_env(
        {
            "DATABASE_URL": database_url,
            "REELTRACE_DATA_DIR": str(tmp_path / "data"),
            "REELTRACE_JAEGER_URL": JAEGER,
            "REELTRACE_LOG_FORMAT": "json",
            # Nothing listens there: spans are dropped by the exporter, not by the config.
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        }
    )
    serve = start_serve_on_free_port(env, tmp_path / "serve.log")
    try:
        r = httpx.get(f"{serve.url}/readyz")
    finally:
        serve.stop()
    assert r.json()["checks"]["traces"] == "ok"
    assert not [e for e in _events(serve) if e["event"] == "traces_not_exported"]
