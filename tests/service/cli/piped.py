"""Running the command as `reeltrace ... | cat` does: no terminal anywhere, no COLUMNS."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.service.cli.conftest import REELTRACE, Cli

# A table row whose first cell is empty: the rest of the row above, wrapped.
CONTINUATION = re.compile(r"^│\s+│")


def run_piped(
    cli: Cli, *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run with stdin, stdout and stderr off any terminal, so rich cannot measure one.

    The `cli` fixture sets COLUMNS=200 for readable failures; a pipe has no such width.
    """
    env = {k: v for k, v in cli.env.items() if k != "COLUMNS"}
    return subprocess.run(
        [REELTRACE, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wrapped_rows(output: str) -> list[str]:
    """The table lines that continue a wrapped row (none when nothing was squeezed)."""
    return [line for line in output.splitlines() if CONTINUATION.match(line)]
