"""The chaos suite's parts: real `serve`/`worker` processes, callback receivers, submissions.

Sizes come from environment knobs so CI runs a small suite and an operator a large one:
`REELTRACE_CHAOS_REQUESTS` (requests per scenario, default 16) and
`REELTRACE_CHAOS_OUTAGE_SECONDS` (how long PostgreSQL stays down, default 6).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.serve import REPO, ServeProcess, serve_env, start_serve_on_free_port
from tests.e2e.serve import start_serve as start_serve_at
from tests.support.prometheus import free_port

REQUESTS = int(os.environ.get("REELTRACE_CHAOS_REQUESTS", "16"))
OUTAGE_SECONDS = float(os.environ.get("REELTRACE_CHAOS_OUTAGE_SECONDS", "6"))
LEASE_SECONDS = 2.0
WEBHOOK_TIMEOUT_SECONDS = 1.0
# Prompts longer than the 50 characters logs may carry, each with its own ending, so a
# log line holding more than its first 50 characters is found.
PROMPT = "a red fox running through fresh snow under a violet evening sky, take {index} of the chaos run"


def chaos_settings(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every process of a scenario: short leases and timeouts, fast retries."""
    settings = {
        "DATABASE_URL": database_url,
        "REELTRACE_DATA_DIR": str(data_dir),
        "REELTRACE_RATE_LIMIT": "100000/minute",
        "REELTRACE_SIM_LATENCY_SECONDS": "2",
        "REELTRACE_SIM_JITTER_SECONDS": "1",
        "REELTRACE_POLL_INTERVAL_SECONDS": "0.3",
        "REELTRACE_RETRY_BASE_SECONDS": "0.1",
        "REELTRACE_WORKER_POLL_SECONDS": "0.1",
        "REELTRACE_LEASE_SECONDS": str(LEASE_SECONDS),
        "REELTRACE_HEARTBEAT_SECONDS": "0.5",
        "REELTRACE_WATCHDOG_INTERVAL_SECONDS": "1",
        "REELTRACE_WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_SECONDS),
        "REELTRACE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "REELTRACE_WEBHOOK_RETRY_MAX_SECONDS": "1",
        "REELTRACE_WEBHOOK_RETRY_WINDOW_SECONDS": "120",
        "REELTRACE_METRICS_PORT": "0",
        "OTEL_SDK_DISABLED": "true",
        **extra,
    }
    return serve_env(settings)


def create_key(env: Mapping[str, str], cwd: Path) -> str:
    """An admin API key, made with `reeltrace keys create` (its last output line)."""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "keys", "create", "--scopes", "admin", "--name", "chaos"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1].strip()


def start_serve(
    env: Mapping[str, str], log: Path, *, worker: bool = True, port: int | None = None
) -> ServeProcess:
    """`reeltrace serve` (with its worker unless `worker` is False), once `/readyz` answers 200."""
    if port is None:
        return start_serve_on_free_port(env, log, worker=worker)
    return start_serve_at(env, port, log, worker=worker)


def start_worker(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "worker"],
            env=dict(env),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


# --- callback receivers ------------------------------------------------------------------


@dataclass
class Receiver:
    """A local webhook receiver: `good` answers 200, `slow` answers after the webhook timeout,
    `flapping` alternates 503 and 200, `dead` is a closed port (nothing listens)."""

    kind: str
    # (request id from the body, X-Reeltrace-Delivery) of every call received.
    calls: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.kind}"

    def start(self) -> Receiver:
        if self.kind == "dead":
            self.port = free_port()
            return self
        outer = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                rid = str(json.loads(body or b"{}").get("id"))
                with lock:
                    outer.calls.append((rid, self.headers.get("X-Reeltrace-Delivery", "")))
                    count = len(outer.calls)
                if outer.kind == "slow":
                    time.sleep(WEBHOOK_TIMEOUT_SECONDS * 2)
                status = 503 if outer.kind == "flapping" and count % 2 == 1 else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def receivers(*kinds: str) -> Iterator[dict[str, Receiver]]:
    started = {kind: Receiver(kind).start() for kind in kinds}
    try:
        yield started
    finally:
        for receiver in started.values():
            receiver.stop()


# --- submissions -------------------------------------------------------------------------


@dataclass
class Submissions:
    """What the API accepted (202) and what it refused, by request id."""

    accepted: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    prompts: list[str] = field(default_factory=list)


def body(index: int, callback_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "user_id": f"chaos-user-{index % 7}",
        "prompt": PROMPT.format(index=index),
    }
    if callback_url:
        payload["callback_url"] = callback_url
    return payload


async def submit(
    base_url: str,
    key: str,
    count: int,
    *,
    callbacks: list[str] | None = None,
    per_second: float | None = None,
    into: Submissions | None = None,
    first_index: int = 0,
) -> Submissions:
    """POST `count` requests (at `per_second` if given, else all at once, 8 at a time)."""
    result = into or Submissions()
    limit = asyncio.Semaphore(8)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as client:

        async def one(index: int) -> None:
            url = callbacks[index % len(callbacks)] if callbacks else None
            sent = body(index, url)
            result.prompts.append(sent["prompt"])
            async with limit:
                try:
                    response = await client.post("/api/v1/requests", json=sent)
                except httpx.HTTPError:
                    result.errors += 1  # the server was down: not accepted
                    return
            if response.status_code == 202:
                result.accepted[uuid.UUID(response.json()["id"])] = sent
            else:
                result.refused[response.status_code] = result.refused.get(response.status_code, 0) + 1

        tasks = []
        for index in range(first_index, first_index + count):
            tasks.append(asyncio.create_task(one(index)))
            if per_second:
                await asyncio.sleep(1 / per_second)
        await asyncio.gather(*tasks)
    return result


__all__ = ["REPO"]


# --- waiting on the database ---------------------------------------------------------------


def rows(database_url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return list(conn.execute(sql.encode(), dict(params or {})).fetchall())


async def wait_until(check: Any, within: float, what: str) -> None:
    """Poll a plain predicate until true; fails the scenario past `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.2)


def all_settled(database_url: str, ids: list[uuid.UUID]) -> bool:
    """Every request terminal, and its notification handed over: the stage ended, or its
    delivery kept (a delivery to a failing receiver retries on its own schedule)."""
    if not ids:
        return True
    found = rows(
        database_url,
        "SELECT count(*) FILTER (WHERE r.status IN ('completed', 'failed', 'timeout')"
        " AND (s.status IN ('completed', 'skipped', 'failed')"
        "      OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.request_id = r.id)))"
        " FROM video_requests r"
        " JOIN request_stages s ON s.request_id = r.id AND s.stage_name = 'notification'"
        " WHERE r.id = ANY(%(ids)s)",
        {"ids": ids},
    )
    return bool(found[0][0] == len(ids))
