"""A real `reeltrace serve` for the page tests, with keys made by `reeltrace keys create`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.serve import TERMINAL, ServeProcess, serve_env, start_serve_on_free_port
from tests.support.pg import PgCluster

JAEGER = "http://jaeger.example.test:16686"

# Quick runs (~3 s; generation alone 2.5 s, long enough to be seen running even on a
# loaded machine), breakers and heartbeats that show up within a second.
FAST = {
    "REELTRACE_SIM_LATENCY_SECONDS": "2.5",
    "REELTRACE_SIM_JITTER_SECONDS": "0",
    "REELTRACE_POLL_INTERVAL_SECONDS": "0.1",
    "REELTRACE_WORKER_POLL_SECONDS": "0.1",
    "REELTRACE_HEARTBEAT_SECONDS": "1",
    "REELTRACE_RETRY_BASE_SECONDS": "0.05",
    "REELTRACE_RETRY_MAX_SECONDS": "0.1",
    "REELTRACE_RATE_LIMIT": "100000/minute",
    "REELTRACE_API_KEY_CACHE_SECONDS": "0",
    "REELTRACE_JAEGER_URL": JAEGER,
    "REELTRACE_LOG_LEVEL": "warning",
    "OTEL_TRACES_EXPORTER": "none",  # traced (so requests have a trace ID), exported nowhere
}


@dataclass
class PageServer:
    serve: ServeProcess
    env: dict[str, str]
    read_key: str
    admin_key: str

    @property
    def url(self) -> str:
        return self.serve.url

    def create_key(self, scopes: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli.main", "keys", "create", "--scopes", scopes],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip().splitlines()[-1]

    def submit(self, index: int = 0, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "user_id": f"page-user-{index % 3}",
            "guild_id": "guild-7",
            "prompt": f"a red fox running through fresh snow, take {index}",
            **fields,
        }
        response = httpx.post(
            f"{self.url}/api/v1/requests",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        accepted: dict[str, Any] = response.json()
        return accepted

    def wait_terminal(self, request_id: str, within: float = 60.0) -> dict[str, Any]:
        """The request once it has ended (polled through the API)."""
        deadline = time.monotonic() + within
        while True:
            response = httpx.get(
                f"{self.url}/api/v1/monitoring/requests/{request_id}",
                headers={"Authorization": f"Bearer {self.admin_key}"},
                timeout=30,
            )
            body: dict[str, Any] = response.json()
            if body.get("status") in TERMINAL or time.monotonic() > deadline:
                assert body.get("status") in TERMINAL, f"{request_id} did not end: {body}"
                return body
            time.sleep(0.1)


@contextmanager
def page_server(
    pg: PgCluster, workdir: Path, settings: Mapping[str, str], *, worker: bool = True
) -> Iterator[PageServer]:
    """`reeltrace serve` on a fresh database with `settings` over FAST, and two keys."""
    database = pg.new_database()
    workdir.mkdir(parents=True, exist_ok=True)
    env = serve_env(
        {**FAST, "DATABASE_URL": pg.url(database), "REELTRACE_DATA_DIR": str(workdir / "data"), **settings}
    )
    log = workdir / "serve.log"
    serve = start_serve_on_free_port(env, log, worker=worker)
    try:
        server = PageServer(serve, env, read_key="", admin_key="")
        server.read_key = server.create_key("read")
        server.admin_key = server.create_key("admin")
        yield server
    finally:
        serve.stop()
        pg.drop_database(database)
