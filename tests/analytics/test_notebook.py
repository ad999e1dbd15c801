"""The overview notebook runs on a snapshot and draws its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.analytics.conftest import Exported

NOTEBOOK = Path(__file__).parents[2] / "analytics" / "notebooks" / "overview.py"
FIGURES = ("latency_distribution.png", "outcomes_over_time.png", "top_prompts.png")


@pytest.mark.slow
def test_notebook_plots_latency_outcomes_and_prompts(exported: Exported, tmp_path: Path) -> None:
    """Run as a script on a snapshot, the notebook saves its three figures as PNG images."""
    out = tmp_path / "figures"
    env = {**os.environ, "REELTRACE_EXPORT_DIR": str(exported.root), "REELTRACE_NOTEBOOK_OUT": str(out)}

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
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) > 10_000, name


@pytest.mark.slow
def test_notebook_without_a_snapshot_fails_clearly(tmp_path: Path) -> None:
    """Pointed at an empty directory, the notebook stops with the 'run reeltrace export' message."""
    env = {**os.environ, "REELTRACE_EXPORT_DIR": str(tmp_path / "none")}
    proc = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=NOTEBOOK.parents[2],
    )
    assert proc.returncode != 0
    assert "run `reeltrace export` first" in proc.stderr
