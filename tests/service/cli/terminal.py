"""Running the command on a pseudo-terminal, as a user at a terminal sees it.

The output is kept raw (escape sequences included), so a test can read what each
refresh of a live display drew: the text, and the styles it was drawn in.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import termios
from dataclasses import dataclass, field
from pathlib import Path

from tests.service.cli.conftest import REELTRACE, Cli

SGR = re.compile(r"\x1b\[([0-9;]*)m")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROWS, COLUMNS = 40, 160


@dataclass
class TerminalRun:
    """A `reeltrace` process whose stdin, stdout and stderr are one terminal."""

    process: asyncio.subprocess.Process
    master: int
    chunks: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def lines(self) -> list[str]:
        """Every line drawn so far, each refresh's lines included, escape sequences kept."""
        return self.text.replace("\r", "\n").split("\n")

    async def pump(self) -> None:
        """Read the terminal until the process closes it."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, self.master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    async def finish(self, pump: asyncio.Task[None], within: float = 60) -> None:
        """Wait for the process to exit and its output to be read, then close the terminal."""
        try:
            await asyncio.wait_for(self.process.wait(), within)
            await asyncio.wait_for(pump, within)
        finally:
            if self.process.returncode is None:
                self.process.kill()
            os.close(self.master)

    async def until(self, predicate: object, within: float = 60) -> None:
        """Wait until `predicate(self)` holds (a safety bound, not a measurement)."""
        async with asyncio.timeout(within):
            while not predicate(self):  # type: ignore[operator]
                await asyncio.sleep(0.05)


async def start_on_terminal(
    cli: Cli, *args: str, cwd: Path | None = None
) -> tuple[TerminalRun, asyncio.Task[None]]:
    """Start the command on a fresh pseudo-terminal of ROWS x COLUMNS with 256 colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in cli.env.items() if k not in {"NO_COLOR", "COLUMNS", "LINES", "FORCE_COLOR"}}
    env["TERM"] = "xterm-256color"
    process = await asyncio.create_subprocess_exec(
        REELTRACE, *args, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    run = TerminalRun(process, master)
    return run, asyncio.create_task(run.pump())


def plain(text: str) -> str:
    return ESCAPE.sub("", text)


def is_dim(drawn: str) -> bool:
    """Whether any character of `drawn` is drawn faint (SGR 2), colour parameters aside."""
    for match in SGR.finditer(drawn):
        params = [int(p) if p else 0 for p in match.group(1).split(";")]
        i = 0
        while i < len(params):
            if params[i] in (38, 48):  # a colour: 5;n or 2;r;g;b follows
                i += 3 if i + 1 < len(params) and params[i + 1] == 5 else 5
                continue
            if params[i] == 2:
                return True
            i += 1
    return False


def stage_bars(lines: list[str], stage: str, state: str) -> list[str]:
    """The bar drawn for `stage` on each line that shows it in `state`, escapes kept."""
    pattern = re.compile(rf"{stage}\s+(?P<bar>.*?)\s*(?:\x1b\[[0-9;]*m\s*)*{state}\b")
    bars = []
    for line in lines:
        match = pattern.search(line)
        if match is not None and plain(match.group("bar")).strip():
            bars.append(match.group("bar"))
    return bars
