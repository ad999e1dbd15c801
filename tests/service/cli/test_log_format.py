"""Log lines read as text on a terminal and as JSON elsewhere; REELTRACE_LOG_FORMAT wins."""

from __future__ import annotations

import json

import pytest

from tests.service.cli.conftest import Cli
from tests.service.cli.terminal import plain, start_on_terminal

pytestmark = pytest.mark.slow


def _ready_lines(output: str) -> list[str]:
    return [line.strip() for line in plain(output).replace("\r", "").splitlines() if "database_ready" in line]


async def _on_terminal(cli: Cli, **env: str) -> list[str]:
    cli.env.update({"REELTRACE_LOG_LEVEL": "info", **env})
    run, pump = await start_on_terminal(cli, "keys", "list")
    await run.finish(pump)
    assert run.process.returncode == 0, plain(run.text)
    return _ready_lines(run.text)


async def test_on_a_terminal_logs_are_text(cli: Cli) -> None:
    """On a terminal, a log line is structlog's console text, not JSON."""
    lines = await _on_terminal(cli)
    assert len(lines) == 1
    assert not lines[0].startswith("{")
    assert "[info" in lines[0]
    assert "embedded=False" in lines[0]


def test_off_a_terminal_logs_are_json(cli: Cli) -> None:
    """Written to a pipe (a service manager, a container), a log line is one JSON object."""
    result = cli.run("keys", "list", REELTRACE_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr
    lines = _ready_lines(result.stderr)
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == "database_ready"


async def test_the_log_format_setting_wins_on_a_terminal(cli: Cli) -> None:
    """REELTRACE_LOG_FORMAT=json gives JSON lines even on a terminal."""
    lines = await _on_terminal(cli, REELTRACE_LOG_FORMAT="json")
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == "database_ready"
