"""Alembic run by hand (`alembic check`, `alembic revision --autogenerate`) reaches the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_alembic_by_hand_reads_database_url_and_sees_nothing_pending_at_head(database_url: str) -> None:
    """With no ini file, `alembic check` takes DATABASE_URL and finds the models and head in agreement."""
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
