"""`reeltrace serve` as a child process, and a client that drives requests through it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({"completed", "failed", "timeout"})


def serve_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus every reeltrace and OpenTelemetry variable, plus `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REELTRACE_", "OTEL_")) and k not in {"DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(settings)
    return env


@dataclass
class ServeProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM (serve stops its worker and closes its pools), SIGKILL if that hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_serve(
    env: Mapping[str, str], port: int, log: Path, within: float = 60.0, *, worker: bool = True
) -> ServeProcess:
    """Start `reeltrace serve --port <port>` (`--no-worker` unless `worker`) and wait until
    `/readyz` answers 200."""
    args = ["--port", str(port)] + ([] if worker else ["--no-worker"])
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "serve", *args],
            env=dict(env),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    serve = ServeProcess(port, process, log)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"reeltrace serve exited ({process.returncode}):\n{serve.tail()}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{serve.url}/readyz", timeout=2).status_code == 200:
                return serve
        time.sleep(0.2)
    serve.stop()
    raise AssertionError(f"reeltrace serve not ready within {within} s:\n{serve.tail()}")


def request_body(request_id: uuid.UUID, index: int) -> dict[str, Any]:
    """A veo request, every eighth a lesson (so both pipelines and every dependency are seen)."""
    body: dict[str, Any] = {
        "request_id": str(request_id),
        "user_id": f"e2e-user-{index % 10}",
        "prompt": f"a red fox running through fresh snow, take {index}",
        "aspect_ratio": "9:16" if index % 3 == 0 else "16:9",
    }
    if index % 8 == 0:
        body |= {"pipeline": "lesson", "topic": f"photosynthesis, part {index}"}
    return body


async def _submit_all(base_url: str, ids: list[uuid.UUID], concurrency: int) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(index: int, rid: uuid.UUID) -> dict[str, Any]:
            async with limit:
                response = await client.post("/api/v1/requests", json=request_body(rid, index))
            assert response.status_code == 202, response.text
            accepted: dict[str, Any] = response.json()
            return accepted

        return list(await asyncio.gather(*(one(i, rid) for i, rid in enumerate(ids))))


def submit_all(base_url: str, ids: list[uuid.UUID], concurrency: int = 16) -> list[dict[str, Any]]:
    """POST one request per id, `concurrency` at a time; returns the 202 bodies."""
    return asyncio.run(_submit_all(base_url, ids, concurrency))


def start_serve_on_free_port(
    env: Mapping[str, str], log: Path, within: float = 60.0, *, worker: bool = True
) -> ServeProcess:
    """`start_serve` on a port from the OS, trying another if it was taken before serve bound it."""
    attempt = 1
    while True:
        try:
            return start_serve(env, free_port(), log, within, worker=worker)
        except AssertionError as exc:
            if attempt == 3 or "address already in use" not in str(exc):
                raise
            attempt += 1
