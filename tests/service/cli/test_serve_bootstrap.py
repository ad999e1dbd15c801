"""The first `reeltrace serve` on the embedded default prints an admin key, once."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.auth.keys import KEY_RE
from tests.service.cli.conftest import REELTRACE, Cli

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_once(cli: Cli, data_dir: Path) -> list[str]:
    """Start serve on the embedded database, read its start-up lines, check the key works, stop it."""
    port = free_port()
    env = {k: v for k, v in cli.env.items() if k != "DATABASE_URL"}
    process = await asyncio.create_subprocess_exec(
        REELTRACE,
        "serve",
        "--no-worker",
        "--port",
        str(port),
        env={**env, "REELTRACE_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("listening on" in line for line in lines):
                raw = await process.stdout.readline()
                assert raw, f"serve ended early: {lines}"
                lines.append(raw.decode().rstrip())
        keys = [line for line in lines if KEY_RE.match(line)]
        if keys:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                r = await c.get(
                    "/api/v1/monitoring/dashboard", headers={"Authorization": f"Bearer {keys[0]}"}
                )
                assert r.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
    return lines


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside pytest's (which the embedded server's user cannot enter)."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-serve-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_first_serve_prints_an_admin_key_once(cli: Cli, data_dir: Path) -> None:
    """The first start prints one admin key (which works); the second start prints none."""
    first = await serve_once(cli, data_dir)
    keys = [line for line in first if KEY_RE.match(line)]
    assert len(keys) == 1, first
    assert any("admin API key" in line for line in first)
    second = await serve_once(cli, data_dir)
    assert not [line for line in second if KEY_RE.match(line)], second
