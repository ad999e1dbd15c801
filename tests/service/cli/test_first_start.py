"""The first `reeltrace serve` on a terminal, with nothing configured, as a new user meets it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.auth.keys import KEY_RE
from tests.service.cli.conftest import Cli
from tests.service.cli.piped import run_piped
from tests.service.cli.terminal import plain, start_on_terminal
from tests.service.cli.test_serve_bootstrap import free_port

pytestmark = pytest.mark.slow

EXPORT_KEY = re.compile(r"^\s*export REELTRACE_API_KEY=(\S+)$", re.MULTILINE)


@dataclass
class FirstStart:
    output: str  # all serve wrote to its terminal, escapes removed
    data_dir: Path  # the user's default data directory
    port: int
    cli: Cli  # the environment it ran in: no reeltrace settings at all


@pytest.fixture(scope="module")
def first_start() -> Iterator[FirstStart]:
    """serve started on a terminal, in one folder, with no setting but its port; stopped once ready.

    The data lives outside pytest's directories (the embedded server's user must enter them).
    """
    root = Path(tempfile.mkdtemp(prefix="reeltrace-first-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "DATABASE_URL", "OTEL_"))}
    env["XDG_DATA_HOME"] = str(root / "xdg")
    (root / "a").mkdir()
    cli, port = Cli(env), free_port()

    async def serve() -> str:
        run, pump = await start_on_terminal(cli, "serve", "--no-worker", "--port", str(port), cwd=root / "a")
        try:
            await run.until(lambda r: EXPORT_KEY.search(plain(r.text).replace("\r", "")), within=180)
            run.process.send_signal(signal.SIGTERM)
        finally:
            await run.finish(pump)
        return plain(run.text).replace("\r", "")

    try:
        yield FirstStart(asyncio.run(serve()), root / "xdg" / "reeltrace", port, cli)
    finally:
        # The embedded server stops with its last holder; a late one-shot command is one.
        shutil.rmtree(root, ignore_errors=True)


def test_the_first_start_prints_the_key_as_an_export(first_start: FirstStart) -> None:
    """The admin key is printed as `export REELTRACE_API_KEY=...`, ready to paste."""
    keys = EXPORT_KEY.findall(first_start.output)
    assert len(keys) == 1, first_start.output
    assert KEY_RE.match(keys[0])


def test_a_port_other_than_the_default_is_printed_as_an_export(first_start: FirstStart) -> None:
    """serve on another port prints `export REELTRACE_API_URL=...` for that address."""
    assert f"export REELTRACE_API_URL=http://127.0.0.1:{first_start.port}" in first_start.output


def test_the_key_printed_once_is_never_in_the_logs(first_start: FirstStart) -> None:
    """The key appears exactly once in all serve wrote: its export line, not a log line."""
    (key,) = EXPORT_KEY.findall(first_start.output)
    assert first_start.output.count(key) == 1
    assert first_start.output.count(key[:12]) >= 1  # its prefix may be logged, nothing more


def test_on_a_terminal_serve_logs_text(first_start: FirstStart) -> None:
    """serve's log lines on a terminal are console text, not JSON."""
    lines = [line for line in first_start.output.splitlines() if "database_ready" in line]
    assert lines, first_start.output
    assert not any(line.lstrip().startswith("{") for line in lines)


def test_serve_says_where_its_data_lives(first_start: FirstStart) -> None:
    """serve names its data directory: the user's, with nothing configured."""
    assert f"data in {first_start.data_dir} (REELTRACE_DATA_DIR)" in first_start.output
    assert (first_start.data_dir / "pgdata" / "PG_VERSION").is_file()


def test_a_command_from_another_folder_reaches_the_same_database(
    first_start: FirstStart, tmp_path: Path
) -> None:
    """`keys list` run from another folder finds serve's database and its bootstrap key."""
    other = tmp_path / "b"
    other.mkdir()
    result = run_piped(first_start.cli, "keys", "list", cwd=other)
    assert result.returncode == 0, result.stderr
    assert "bootstrap admin" in result.stdout
    assert not (other / ".reeltrace").exists()
