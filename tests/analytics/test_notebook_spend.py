"""The overview notebook's spend chart, drawn from the requests' cost in a snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.export import export_snapshot
from tests.analytics.conftest import pg_exec
from tests.analytics.datagen import generate

NOTEBOOK = Path(__file__).parents[2] / "analytics" / "notebooks" / "overview.py"


@pytest.mark.slow
def test_notebook_draws_spend_per_day(dsn: str, tmp_path: Path) -> None:
    """Run as a script on a snapshot of priced requests, the notebook saves the spend chart."""
    generate(dsn, 300, span_days=20, guilds=3)
    pg_exec(
        dsn,
        "UPDATE video_requests SET billable_seconds = duration_seconds,"
        " cost_usd = duration_seconds * 0.10 WHERE status IN ('completed', 'failed')",
    )
    root = tmp_path / "snap"
    export_snapshot(dsn, root)
    out = tmp_path / "figures"
    env = {**os.environ, "REELTRACE_EXPORT_DIR": str(root), "REELTRACE_NOTEBOOK_OUT": str(out)}
    proc = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=NOTEBOOK.parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    data = (out / "spend_per_day.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
