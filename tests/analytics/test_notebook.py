"""The overview notebook runs on a snapshot and draws its figures; `reeltrace notebook` opens it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.analytics.conftest import Exported
from tests.service.cli.conftest import REELTRACE
from tests.service.cli.test_serve_bootstrap import free_port

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


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELTRACE_", "DATABASE_URL"))}
    return {**env, "COLUMNS": "200", **extra}


@pytest.mark.slow
def test_notebook_html_writes_a_page_with_its_charts(exported: Exported, tmp_path: Path) -> None:
    """`reeltrace notebook --html FILE` writes one page with the three charts inlined, loading nothing."""
    page = tmp_path / "overview.html"
    proc = subprocess.run(
        [REELTRACE, "notebook", "--html", str(page), "--snapshots", str(exported.root)],
        env=_cli_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {page}" in proc.stdout
    text = page.read_text()
    for name in ("latency_distribution", "outcomes_over_time", "top_prompts"):
        assert f'<figure id="{name}"><svg' in text, name
    assert exported.result.manifest.version in text
    assert "<script" not in text
    assert " src=" not in text  # nothing is fetched from elsewhere
    assert "<link" not in text


@pytest.mark.slow
def test_notebook_without_a_snapshot_says_to_export(tmp_path: Path) -> None:
    """With no snapshot, `reeltrace notebook` fails in one line saying to run `reeltrace export`."""
    proc = subprocess.run(
        [REELTRACE, "notebook", "--html", str(tmp_path / "o.html"), "--snapshots", str(tmp_path / "none")],
        env=_cli_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "run `reeltrace export` first" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.html").exists()


@pytest.mark.slow
def test_notebook_without_marimo_names_the_install(exported: Exported, tmp_path: Path) -> None:
    """Where marimo is not installed, `reeltrace notebook` says so in one line with the install command."""
    hide = tmp_path / "hide"
    hide.mkdir()
    # An interpreter on which marimo cannot be found, as on an install without the extra.
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'marimo' or name.startswith('marimo.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    proc = subprocess.run(
        [REELTRACE, "notebook", "--no-browser", "--snapshots", str(exported.root)],
        env=_cli_env(PYTHONPATH=str(hide)),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 1
    assert " ".join(proc.stderr.split()) == (
        "error: the notebook needs marimo, which is not installed: "
        "pip install 'reeltrace[notebooks]' (in a checkout: pip install -e '.[notebooks]')"
    )


@pytest.mark.slow
def test_notebook_serves_the_notebook(exported: Exported, tmp_path: Path) -> None:
    """`reeltrace notebook` serves the marimo notebook on its port, on the snapshot it names."""
    port = free_port()
    proc = subprocess.Popen(
        [REELTRACE, "notebook", "--no-browser", "--port", str(port), "--snapshots", str(exported.root)],
        env=_cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert f"notebook on snapshot {exported.result.manifest.version} from {exported.root}" in first
        page = None
        for _ in range(600):  # until it listens: a bound, not a measurement
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        assert page is not None
        assert page.status_code == 200
        assert "marimo" in page.text
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
