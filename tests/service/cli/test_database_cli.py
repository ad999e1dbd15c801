"""`reeltrace migrate` and `reeltrace cleanup`, and the quiet logs of one-shot commands."""

from __future__ import annotations

import socket

import pytest

from service.db import migrate as migrations
from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow

# The newest migration: other revisions are added on top of 0006 over time.
HEAD = migrations.head_revision()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--down"], "--down needs --revision"),
        (["--revision", "0005"], f"--revision 0005 is below the current revision {HEAD}"),
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
    """`--down --revision 0005` goes down one step; a downgrade "up" is refused; `migrate` returns to head."""
    down = cli.run("migrate", "--down", "--revision", "0005")
    assert down.returncode == 0, down.stderr
    assert "is at revision 0005" in down.stdout
    up_by_down = cli.run("migrate", "--down", "--revision", str(HEAD))
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


def test_cleanup_with_retention_deletes(cli: Cli) -> None:
    result = cli.run("cleanup", REQUEST_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert "deleted 0 requests older than 30 days" in result.stdout


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
