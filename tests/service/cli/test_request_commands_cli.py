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
from service.video_request import VideoRequest
from service.worker.repository import WorkRepository
from tests.service.api.live import LiveServer, live_server
from tests.service.cli.conftest import Cli
from tests.service.cli.piped import run_piped, wrapped_rows
from tests.service.cli.terminal import TerminalRun, is_dim, plain, stage_bars, start_on_terminal

pytestmark = pytest.mark.slow


@pytest.fixture
def api(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as server:
        yield server


async def new_key(runtime: Runtime, *scopes: str) -> str:
    return (await create_key(ApiKeyRepository(runtime.database), "cli-test", scopes)).key


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


async def test_submit_wait_shows_how_the_notification_ended(client_cli: Cli, runtime: Runtime) -> None:
    """The notification stage runs after the terminal status (where the stream ends): while a
    worker holds the request, `--wait` shows its outcome, not the "pending" it had at the end."""
    proc = await client_cli.start("submit", "a fox in the snow", "--user-id", "cli-user", "--wait")
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"request ([0-9a-f-]{36})", first)
    assert match, first
    request_id = uuid.UUID(match.group(1))
    work = WorkRepository(runtime.database)
    claimed = await work.claim("test-worker", 10, 60)
    assert [item.id for item in claimed] == [request_id]
    await drive(runtime, request_id)
    await asyncio.sleep(1.0)  # the callback is delivered a moment after the request ended
    await runtime.tracker.start_stage(request_id, "notification")
    await runtime.tracker.complete_stage(request_id, "notification")
    # The run is over: its lease goes (under the claim's fence).
    await work.release("test-worker", {item.id: item.claim_generation for item in claimed})
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    shown = [line for line in err.decode().splitlines() if "notification" in line][-1]  # its last state
    assert "completed" in shown, err.decode()
    assert "pending" not in shown, err.decode()


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
        (["trace", "vvd_1700000000000_deadbeef"], {}, "404 not_found"),
        (
            ["submit", "x", "--user-id", "u", "--duration", "5"],
            {},
            "invalid input: --duration: ",
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


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
JAEGER = "http://jaeger.example:16686/"


async def traced_request(runtime: Runtime, trace_id: str | None = TRACE_ID) -> tuple[str, str]:
    """A request stored with this trace id (None: submitted with telemetry off); its UUID and correlation ID."""
    created = await runtime.tracker.create_request(
        VideoRequest(user_id="tracer", prompt="a heron"), trace_id=trace_id
    )
    return str(created.id), created.correlation_id


async def test_trace_prints_the_jaeger_link_last(client_cli: Cli, runtime: Runtime) -> None:
    """`trace <correlation id>` ends with the link to the trace, built from REELTRACE_JAEGER_URL."""
    request_id, correlation_id = await traced_request(runtime)
    for key in (correlation_id, request_id):
        result = client_cli.run("trace", key, REELTRACE_JAEGER_URL=JAEGER)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[-1] == f"http://jaeger.example:16686/trace/{TRACE_ID}"
        assert f"request {request_id} ({correlation_id}) trace {TRACE_ID}" in lines[0]


async def test_trace_without_jaeger_url_prints_the_id_and_a_note(client_cli: Cli, runtime: Runtime) -> None:
    """Without REELTRACE_JAEGER_URL, `trace` prints the trace id and says on stderr that the URL is unset."""
    request_id, _ = await traced_request(runtime)
    result = client_cli.run("trace", request_id)
    assert result.returncode == 0, result.stderr
    assert TRACE_ID in result.stdout
    assert "http" not in result.stdout
    assert (
        result.stderr.strip() == f"REELTRACE_JAEGER_URL is unset: no link; search Jaeger for trace {TRACE_ID}"
    )


async def test_trace_of_a_request_without_a_trace_fails_clearly(client_cli: Cli, runtime: Runtime) -> None:
    """A request stored with no trace id (telemetry off) is a one-line error and exit 1."""
    request_id, _ = await traced_request(runtime, trace_id=None)
    result = client_cli.run("trace", request_id, REELTRACE_JAEGER_URL=JAEGER)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "has no trace: telemetry was off when it was submitted" in lines[0]


async def test_status_links_the_trace_from_the_cli_setting(client_cli: Cli, runtime: Runtime) -> None:
    """The server runs without REELTRACE_JAEGER_URL; set for the CLI, `status` still shows the link."""
    request_id, _ = await traced_request(runtime)
    without = client_cli.run("status", request_id)
    assert without.returncode == 0, without.stderr
    assert "/trace/" not in without.stdout
    shown = client_cli.run("status", request_id, REELTRACE_JAEGER_URL=JAEGER)
    assert shown.returncode == 0, shown.stderr
    assert f"http://jaeger.example:16686/trace/{TRACE_ID}" in shown.stdout


async def test_the_servers_own_trace_link_comes_first(cli: Cli, settings: Settings, runtime: Runtime) -> None:
    """When the API answers with a trace link, `status` and `trace` show that one, not the CLI's."""
    request_id, _ = await traced_request(runtime)
    with live_server(settings.model_copy(update={"jaeger_url": "http://server-jaeger:16686"})) as server:
        env = {
            "REELTRACE_API_URL": server.url,
            "REELTRACE_API_KEY": await new_key(runtime, "read"),
            "REELTRACE_JAEGER_URL": JAEGER,
        }
        traced = cli.run("trace", request_id, **env)
        shown = cli.run("status", request_id, **env)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.splitlines()[-1] == f"http://server-jaeger:16686/trace/{TRACE_ID}"
    assert shown.returncode == 0, shown.stderr
    assert f"http://server-jaeger:16686/trace/{TRACE_ID}" in shown.stdout
    assert "jaeger.example" not in shown.stdout


async def test_status_piped_keeps_stage_names_whole(client_cli: Cli, runtime: Runtime) -> None:
    """`status | cat` shows every stage name and the trace link whole, one row per stage."""
    request_id, _ = await traced_request(runtime)
    await drive(runtime, uuid.UUID(request_id))
    client_cli.env["REELTRACE_JAEGER_URL"] = JAEGER
    shown = run_piped(client_cli, "status", request_id)
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout
    assert wrapped_rows(shown.stdout) == [], shown.stdout
    for stage in ("validation", "video_generation", "video_processing", "notification"):
        assert re.search(rf"│ \d+ +│ {stage} +│", shown.stdout), shown.stdout
    assert f"http://jaeger.example:16686/trace/{TRACE_ID}" in shown.stdout


async def test_the_default_api_url_is_the_serve_address(
    client_cli: Cli, api: LiveServer, runtime: Runtime
) -> None:
    """Without REELTRACE_API_URL, the CLI calls REELTRACE_HOST:REELTRACE_PORT (0.0.0.0 means this machine)."""
    request_id, _ = await traced_request(runtime)
    del client_cli.env["REELTRACE_API_URL"]
    shown = client_cli.run("status", request_id, REELTRACE_HOST="0.0.0.0", REELTRACE_PORT=str(api.port))  # noqa: S104
    assert shown.returncode == 0, shown.stderr
    assert request_id in shown.stdout


def test_a_stage_spins_only_while_it_runs() -> None:
    """submit --wait's spinner turns for a running stage, not for one waiting its turn or left
    open by a request that ended (rich keeps the last frame on screen)."""
    from rich.progress import Progress

    from service.cli.follow import _StageSpinner

    progress = Progress()
    waiting = progress.add_task("video_processing", total=1, start=False)
    running = progress.add_task("video_generation", total=None)
    left_open = progress.add_task("video_generation", total=None)
    progress.stop_task(left_open)
    done = progress.add_task("validation", total=1)
    progress.update(done, completed=1)
    spinner = _StageSpinner(finished_text="✓")
    shown = {name: spinner.render(progress.tasks[task]) for name, task in
             [("waiting", waiting), ("running", running), ("left_open", left_open), ("done", done)]}  # fmt: skip

    def text(value: object) -> str:
        return str(getattr(value, "plain", value)).strip()

    assert text(shown["waiting"]) == text(shown["left_open"]) == ""
    assert text(shown["running"]) not in ("", "✓")
    assert text(shown["done"]) == "✓"


BAR = "━" * 40  # rich's default bar width, drawn full


def _request_id(run: TerminalRun) -> uuid.UUID | None:
    match = re.search(r"request ([0-9a-f-]{36}) \(vvd_", plain(run.text))
    return uuid.UUID(match.group(1)) if match else None


async def _wait_display_while_generating(client_cli: Cli, runtime: Runtime) -> TerminalRun:
    """`submit --wait` on a terminal, held with validation done, video_generation running and
    video_processing waiting for a dozen refreshes; then driven to its end."""
    run, pump = await start_on_terminal(
        client_cli, "submit", "a fox in the snow", "--user-id", "cli-user", "--wait"
    )
    try:
        await run.until(lambda r: _request_id(r) is not None)
        request_id = _request_id(run)
        assert request_id is not None
        t = runtime.tracker
        await t.start_request(request_id)
        await t.start_stage(request_id, "validation")
        await t.complete_stage(request_id, "validation")
        await t.start_stage(request_id, "video_generation")
        await run.until(lambda r: len(stage_bars(r.lines(), "video_generation", "in_progress")) >= 12)
        await t.complete_stage(request_id, "video_generation")
        await t.start_stage(request_id, "video_processing")
        await t.complete_stage(request_id, "video_processing")
        await t.complete_request(request_id, ["https://cdn.example.com/fox.mp4"])
    finally:
        await run.finish(pump)
    assert run.process.returncode == 0, plain(run.text)
    return run


async def test_submit_wait_pulses_the_running_stage(client_cli: Cli, runtime: Runtime) -> None:
    """On a terminal, the running stage's bar changes from refresh to refresh (it pulses)."""
    run = await _wait_display_while_generating(client_cli, runtime)
    running = stage_bars(run.lines(), "video_generation", "in_progress")
    assert len(set(running)) > 1, running[:3]


async def test_submit_wait_keeps_waiting_stages_still_and_dim(client_cli: Cli, runtime: Runtime) -> None:
    """A stage waiting its turn is drawn the same on every refresh, and faint."""
    run = await _wait_display_while_generating(client_cli, runtime)
    waiting = stage_bars(run.lines(), "video_processing", "pending")
    assert len(waiting) >= 12
    assert len(set(waiting)) == 1, sorted(set(waiting))
    assert is_dim(waiting[0])
    running = stage_bars(run.lines(), "video_generation", "in_progress")
    assert not any(is_dim(bar) for bar in running)


async def test_submit_wait_fills_finished_stages(client_cli: Cli, runtime: Runtime) -> None:
    """A finished stage's bar is full and not faint, while others run and at the end."""
    run = await _wait_display_while_generating(client_cli, runtime)
    done = stage_bars(run.lines(), "validation", "completed")
    assert done
    assert {plain(bar) for bar in done} == {BAR}
    assert not any(is_dim(bar) for bar in done)
    last = {
        stage: stage_bars(run.lines(), stage, "completed")[-1]
        for stage in ("video_generation", "video_processing")
    }
    assert {plain(bar) for bar in last.values()} == {BAR}
