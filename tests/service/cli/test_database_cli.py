"""`reeltrace migrate` and `reeltrace cleanup`, and the quiet logs of one-shot commands."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from service.db import migrate as migrations
from service.request_states import RequestStatus
from service.runtime import Runtime
from service.settings import Settings
from service.video_request import VideoRequest
from tests.service.cli.conftest import Cli
from tests.service.tracking.test_retention import aged, count

pytestmark = pytest.mark.slow

# Named from the scripts, so a new migration does not rewrite these tests.
HEAD = str(migrations.head_revision())
_down = ScriptDirectory.from_config(migrations.alembic_config("postgresql://localhost/x")).get_revision(HEAD)
PREVIOUS = str(_down.down_revision if _down is not None else None)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--down"], "--down needs --revision"),
        (["--revision", PREVIOUS], f"--revision {PREVIOUS} is below the current revision {HEAD}"),
        (["--revision", "base"], f"--revision base is below the current revision {HEAD}"),
        (["--revision", "nope"], "--revision nope: Can't locate revision identified by 'nope'"),
    ],
)
def test_migrate_refuses_what_would_silently_do_nothing(
    cli: Cli, database_url: str, args: list[str], expected: str
) -> None:
    """`--down` without a revision, or an upgrade to a lower one, is an error naming the option."""
    result = cli.run("migrate", *args)
    assert result.returncode == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert migrations.current_revision(database_url) == HEAD


def test_migrate_down_and_up_again(cli: Cli, database_url: str) -> None:
    """`--down --revision <previous>` goes down one step; a downgrade "up" is refused; `migrate` returns to head."""
    down = cli.run("migrate", "--down", "--revision", PREVIOUS)
    assert down.returncode == 0, down.stderr
    assert f"is at revision {PREVIOUS}" in down.stdout
    up_by_down = cli.run("migrate", "--down", "--revision", HEAD)
    assert up_by_down.returncode == 2
    assert f"--revision {HEAD}: Destination {HEAD} is not a valid downgrade target" in up_by_down.stderr
    assert "Traceback" not in up_by_down.stderr
    up = cli.run("migrate")
    assert up.returncode == 0, up.stderr
    assert f"is at revision {HEAD}" in up.stdout
    assert migrations.current_revision(database_url) == HEAD


def test_cleanup_without_retention_is_not_an_error(cli: Cli) -> None:
    """Without REQUEST_RETENTION_DAYS, `cleanup` says nothing is deleted, and succeeds."""
    result = cli.run("cleanup")
    assert result.returncode == 0, result.stderr
    assert (
        "retention is not configured (REQUEST_RETENTION_DAYS is unset): nothing is deleted" in result.stdout
    )
    assert "error" not in result.stderr


async def test_cleanup_with_retention_deletes_exactly_the_old_terminal_requests(
    cli: Cli, runtime: Runtime
) -> None:
    """`cleanup` deletes the terminal requests older than the retention, with their stages and
    events, and keeps newer ones and active ones however old."""
    old = [
        await aged(runtime, 40, status)
        for status in (RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.TIMEOUT)
    ]
    new = await aged(runtime, 5, RequestStatus.COMPLETED)
    active = [await aged(runtime, 400, None), await aged(runtime, 400, RequestStatus.GENERATING)]
    tables = ("video_requests", "request_stages", "request_events")
    for rid in old:
        assert [await count(runtime, t, rid) > 0 for t in tables] == [True, True, True]
    result = cli.run("cleanup", REQUEST_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert "deleted 3 requests older than 30 days" in result.stdout
    for rid in old:
        assert [await count(runtime, t, rid) for t in tables] == [0, 0, 0]
    for rid in [new, *active]:
        assert await count(runtime, "video_requests", rid) == 1


@pytest.mark.parametrize(
    "args", [["keys", "list"], ["migrate"], ["cleanup"], ["keys", "create", "--scopes", "read"]]
)
def test_one_shot_commands_log_no_info_lines(cli: Cli, args: list[str]) -> None:
    """Without REELTRACE_LOG_LEVEL, a one-shot command prints its answer and no `database_ready` line."""
    del cli.env["REELTRACE_LOG_LEVEL"]
    result = cli.run(*args, REQUEST_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_explicit_log_level_still_applies(cli: Cli) -> None:
    """REELTRACE_LOG_LEVEL=info set by hand shows a one-shot command's info lines."""
    result = cli.run("keys", "list", REELTRACE_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr
    assert '"event": "database_ready"' in result.stderr


async def test_backfill_applies_the_journal(cli: Cli, settings: Settings) -> None:
    """Writes journaled while PostgreSQL was unreachable land in the database with `reeltrace
    backfill`, which reports them and leaves the journal empty; a second run has nothing to do."""
    data_dir = Path(cli.env["REELTRACE_DATA_DIR"])  # the command's journal lives here
    down_url = "postgresql://nobody@127.0.0.1:1/none"
    down = Runtime.build(settings.model_copy(update={"data_dir": data_dir}), down_url, source_service="test")
    try:
        created = await down.tracker.create_request(VideoRequest(user_id="offline", prompt="a lighthouse"))
        await down.tracker.start_request(created.id)
        assert created.journaled
        pending = down.journal.pending_count()
        assert pending >= 2
    finally:
        await down.close()
    result = cli.run("backfill")
    assert result.returncode == 0, result.stderr
    assert f"applied {pending} of {pending} journaled writes" in result.stdout
    assert "remaining 0" in result.stdout
    up = Runtime.build(
        settings.model_copy(update={"data_dir": data_dir}), cli.env["DATABASE_URL"], source_service="test"
    )
    try:
        read = await up.queries.get_request(created.id)
        assert (read.status, read.user_id) == ("generating", "offline")
        assert up.journal.pending_count() == 0
    finally:
        await up.close()
    again = cli.run("backfill")
    assert again.returncode == 0, again.stderr
    assert "journal is empty: nothing to backfill" in again.stdout


def test_console_log_format_prints_lines_for_humans(cli: Cli) -> None:
    """REELTRACE_LOG_FORMAT=console prints an event as a level-tagged line with its fields, not JSON."""
    result = cli.run("keys", "list", REELTRACE_LOG_LEVEL="info", REELTRACE_LOG_FORMAT="console")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "database_ready" in line]
    assert re.search(r"\[info\s*\] database_ready\b", line), line
    assert not line.lstrip().startswith("{")


@pytest.mark.parametrize("command", ["backfill", "migrate", "worker"])
def test_an_unreachable_database_is_a_one_line_error(cli: Cli, command: str) -> None:
    """A DATABASE_URL nobody answers on ends the command with one line naming the server (password
    masked) and the variable, not a driver traceback."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://reeltrace:hunter2@127.0.0.1:{port}/reeltrace"
    result = cli.run(command, DATABASE_URL=url, REELTRACE_METRICS_PORT="0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"error: cannot reach PostgreSQL at postgresql://reeltrace:***@127.0.0.1:{port}"
    )
    assert "(DATABASE_URL): connection failed" in lines[0]
