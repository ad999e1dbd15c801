"""`reeltrace serve` runs a worker beside the API, unless `--no-worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from service.cli.serve import listen_socket
from service.runtime import Runtime
from service.settings import Settings
from tests.support.workers import statuses, submit, wait_for, wait_terminal

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", *args],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def child_env(values: dict[str, str]) -> dict[str, str]:
    """This environment without reeltrace's settings (and none of OTEL's), plus `values`,
    running the code of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "OTEL_", "DATABASE_URL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**env, **values}


@asynccontextmanager
async def serving(settings: Settings, database_url: str, *flags: str) -> AsyncIterator[str]:
    """`reeltrace serve` as a child process; yields its base URL once it answers."""
    port = free_port()
    env = child_env(
        {
            "DATABASE_URL": database_url,
            "REELTRACE_DATA_DIR": str(settings.data_dir),
            "REELTRACE_HOST": "127.0.0.1",
            "REELTRACE_PORT": str(port),
            "REELTRACE_API_KEYS_REQUIRED": "false",
            "REELTRACE_SIM_LATENCY_SECONDS": "0",
            "REELTRACE_SIM_JITTER_SECONDS": "0",
            "REELTRACE_POLL_INTERVAL_SECONDS": "0.05",
            "REELTRACE_WORKER_POLL_SECONDS": "0.1",
            "OTEL_SDK_DISABLED": "true",
        }
    )
    log = Path(settings.data_dir).parent / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = spawn(["serve", *flags], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:

            async def up() -> bool:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, 60, "reeltrace serve answering")
        yield base
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
async def test_serve_runs_requests_and_shows_its_breakers(
    settings: Settings, runtime: Runtime, database_url: str
) -> None:
    """With its worker, serve runs a queued request to completion, and its API reads the breakers."""
    async with serving(settings, database_url) as base:
        ids = await submit(runtime, 2)
        found = await wait_terminal(runtime, ids, 30)
        async with httpx.AsyncClient(base_url=base) as client:
            breakers = (await client.get("/api/v1/monitoring/circuit-breakers")).json()
    assert set(found.values()) == {"completed"}
    assert {b["dependency"]: b["state"] for b in breakers} == {
        "generation": "closed",
        "storage": "closed",
        "notification": "closed",
        "retrieval": "closed",
        "script": "closed",
        "embedding": "closed",
    }
    generation = next(b for b in breakers if b["dependency"] == "generation")
    assert generation["success_count"] >= 2  # the API reads the breakers the worker uses


@pytest.mark.slow
async def test_serve_without_worker_leaves_requests_queued(
    settings: Settings, runtime: Runtime, database_url: str
) -> None:
    """With --no-worker, serve answers but runs nothing: a queued request stays pending."""
    async with serving(settings, database_url, "--no-worker"):
        [rid] = await submit(runtime)
        await asyncio.sleep(1.5)
        assert (await statuses(runtime, [rid]))[rid] == "pending"


@pytest.mark.slow
async def test_serve_stops_promptly_with_a_stream_open(settings: Settings, database_url: str) -> None:
    """SIGTERM ends open event streams, so a connected client does not keep serve running."""
    async with httpx.AsyncClient(timeout=60) as client:
        async with serving(settings, database_url, "--no-worker") as base:
            response = await client.send(
                client.build_request("GET", f"{base}/api/v1/monitoring/stream"), stream=True
            )
            assert response.status_code == 200
        # `serving` has sent SIGTERM and seen serve exit with 0 (an open stream would hold it).
        # The stream was ended by serve, not cut: its chunked body reads to its end.
        await response.aread()
        await response.aclose()


@pytest.mark.parametrize(
    ("command", "port_variable"), [("serve", "REELTRACE_PORT"), ("worker", "REELTRACE_METRICS_PORT")]
)
def test_a_port_in_use_is_refused_before_anything_starts(
    command: str, port_variable: str, tmp_path: Path
) -> None:
    """`serve`'s API port or a worker's metrics port already taken is a one-line error naming the
    address and its setting, not a traceback; no database or worker is started."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(
            {"REELTRACE_DATA_DIR": str(tmp_path / "data"), port_variable: str(port), "COLUMNS": "200"}
        )
        done = subprocess.run(
            [sys.executable, "-m", "service.cli.main", command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
    output = done.stderr.decode() + done.stdout.decode()
    assert done.returncode == 2, output
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert port_variable in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()  # no embedded PostgreSQL was set up


async def test_serve_socket_gives_its_connections_tcp_nodelay() -> None:
    """The socket serve binds itself must be TCP by protocol number, or asyncio leaves Nagle's
    algorithm on for its connections and every response waits ~40 ms for a delayed ACK."""
    sock = listen_socket("127.0.0.1", 0)
    accepted: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        accepted.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])

        async def served() -> bool:
            return bool(accepted)

        await wait_for(served, 5, "a connection accepted")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert accepted[0] != 0
