"""`reeltrace submit [--wait]` and `reeltrace status` against a live API server."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator

import pytest

from service.auth.keys import create_key
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.live import LiveServer, live_server
from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


@pytest.fixture
def api(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as server:
        yield server


async def new_key(runtime: Runtime, *scopes: str) -> str:
    return (await create_key(ApiKeyRepository(runtime.engine), "cli-test", scopes)).key


@pytest.fixture
async def client_cli(cli: Cli, api: LiveServer, runtime: Runtime) -> Cli:
    """The CLI pointed at the live server, with an admin key."""
    cli.env.update({"REELTRACE_API_URL": api.url, "REELTRACE_API_KEY": await new_key(runtime, "admin")})
    return cli


async def drive(runtime: Runtime, request_id: uuid.UUID) -> None:
    """Play a worker: run the veo pipeline's stages to completion."""
    t = runtime.tracker
    await t.start_request(request_id)
    for stage in ("validation", "video_generation", "video_processing"):
        await t.start_stage(request_id, stage)
        await asyncio.sleep(0.05)
        await t.complete_stage(request_id, stage)
    await t.complete_request(request_id, ["https://cdn.example.com/fox.mp4"])


async def test_submit_wait_follows_the_request_to_its_end(client_cli: Cli, runtime: Runtime) -> None:
    """`submit --wait` prints the request, follows the stream, and ends with the status and video URLs."""
    proc = await client_cli.start("submit", "a fox in the snow", "--user-id", "cli-user", "--wait")
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"request ([0-9a-f-]{36}) \(vvd_\d{13}_[0-9a-f]{8}\) is pending", first)
    assert match, first
    await drive(runtime, uuid.UUID(match.group(1)))
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    out = rest.decode()
    assert f"request {match.group(1)} completed" in out
    assert "https://cdn.example.com/fox.mp4" in out
    progress = err.decode()
    for stage in ("validation", "video_generation", "video_processing", "notification"):
        assert stage in progress


async def test_submit_without_wait_and_status(client_cli: Cli, runtime: Runtime) -> None:
    """`submit` returns at once; `status <id>` shows the request and a table of its stages."""
    result = client_cli.run("submit", "a whale", "--user-id", "u2", "--guild-id", "g2")
    assert result.returncode == 0, result.stderr
    request_id = re.search(r"request ([0-9a-f-]{36})", result.stdout).group(1)  # type: ignore[union-attr]
    await drive(runtime, uuid.UUID(request_id))
    shown = client_cli.run("status", request_id)
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout
    assert "https://cdn.example.com/fox.mp4" in shown.stdout
    for stage in ("validation", "video_generation", "video_processing", "notification"):
        assert stage in shown.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["status", "vvd_1700000000000_deadbeef"], {}, "404 not_found"),
        (
            ["submit", "x", "--user-id", "u", "--duration", "5"],
            {},
            "422 validation_error: body.duration_seconds",
        ),
        (["submit", "x", "--user-id", "u"], {"REELTRACE_API_KEY": "rt_" + "x" * 43}, "401 unauthorized"),
        (
            ["status", "anything"],
            {"REELTRACE_API_URL": "http://127.0.0.1:9"},
            "cannot reach the reeltrace API",
        ),
        (["submit", "x", "--user-id", "u", "--request-id", "nope"], {}, "--request-id must be a UUID"),
    ],
)
def test_errors_are_one_clear_line(
    client_cli: Cli, args: list[str], env: dict[str, str], expected: str
) -> None:
    """API and connection errors end with a non-zero code and one line naming the problem, no traceback."""
    result = client_cli.run(*args, **env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


async def test_forbidden_and_rate_limited(client_cli: Cli, runtime: Runtime) -> None:
    """A read-only key is told it lacks `submit`; past the rate limit the message gives the wait."""
    read_key = await new_key(runtime, "read")
    denied = client_cli.run("submit", "x", "--user-id", "u", REELTRACE_API_KEY=read_key)
    assert denied.returncode != 0
    assert "403 forbidden: this API key lacks the `submit` scope" in denied.stderr
    for _ in range(5):
        assert client_cli.run("submit", "x", "--user-id", "hasty").returncode == 0
    limited = client_cli.run("submit", "x", "--user-id", "hasty")
    assert limited.returncode != 0
    assert re.search(r"429 rate_limited: .* \(retry in \d+ s\)", limited.stderr)
