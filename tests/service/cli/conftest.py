"""Running the real `reeltrace` command in a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REELTRACE = str(Path(sys.executable).parent / "reeltrace")


@dataclass
class Cli:
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [REELTRACE, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    async def start(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            REELTRACE,
            *args,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """The command, pointed at this test's database and a scratch data directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REELTRACE_", "DATABASE_URL", "OTEL_", "GOOGLE_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "REELTRACE_DATA_DIR": str(tmp_path / "data"),
            "REELTRACE_LOG_LEVEL": "warning",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return Cli(env)
