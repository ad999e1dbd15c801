"""The embedded PostgreSQL is stopped by its last holder, even after a holder was killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from service.db.embedded import start_embedded, stop_embedded

REPO = Path(__file__).resolve().parents[2]

# A process that starts the server and dies without letting go of it (as under kill -9).
KILLED_HOLDER = """
import os, sys
from pathlib import Path
from service.db.embedded import start_embedded
url, server = start_embedded(Path(sys.argv[1]))
print(server.get_pid(), flush=True)
os._exit(0)
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temporary tree, which the server's own user cannot enter."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-embedded-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphaned server that exits waits to be reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_last_holder_stops_a_server_whose_starter_was_killed(data_dir: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDER, str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    postmaster = int(started.stdout.split()[-1])
    try:
        assert running(postmaster)  # left behind by the killed process
        url, server = start_embedded(data_dir)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stop_embedded(server)
        assert not running(postmaster)
    finally:
        if running(postmaster):
            os.kill(postmaster, 15)
