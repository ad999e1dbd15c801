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
from service.cli.serve import bootstrap_key_lines
from service.runtime import Runtime
from tests.service.cli.conftest import REELTRACE, Cli

pytestmark = pytest.mark.slow


def printed_keys(lines: list[str]) -> list[str]:
    """The keys serve printed, as `export REELTRACE_API_KEY=<key>` lines."""
    return [line.split("=", 1)[1] for line in lines if line.strip().startswith("export REELTRACE_API_KEY=")]


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
        keys = printed_keys(lines)
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
    keys = printed_keys(first)
    assert len(keys) == 1, first
    assert KEY_RE.match(keys[0])
    assert any("admin API key" in line for line in first)
    second = await serve_once(cli, data_dir)
    assert not printed_keys(second), second


async def test_on_the_default_address_no_api_url_is_printed(runtime: Runtime) -> None:
    """On the CLI's default address, the first start prints the key's export and no REELTRACE_API_URL."""
    lines = await bootstrap_key_lines(runtime)
    assert [line.strip().split("=")[0] for line in lines if "export" in line] == ["export REELTRACE_API_KEY"]
    assert await bootstrap_key_lines(runtime) == []  # once only
