"""The project's own promises: the README's two commands, CI running the test one, clean code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The shell commands in the README's quick-start section."""
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick, re.S)]


def test_readme_has_exactly_two_setup_commands() -> None:
    """One command starts the service on the embedded default, one runs the whole suite."""
    serve, tests = readme_commands()
    assert serve.endswith("reeltrace serve")
    assert "pip install -e ." in serve
    assert "python -m pytest" in tests
    assert "'.[test]'" in tests


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run ends by running the README's test command, word for word."""
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_layout_of_the_design_card() -> None:
    """The top-level layout is the one the design fixes."""
    for name in (
        "service",
        "telemetry",
        "analytics",
        "migrations",
        "prometheus",
        "grafana",
        "otel-collector",
        "tests",
    ):
        assert (ROOT / name).is_dir(), name
    for name in ("docker-compose.yml", "pyproject.toml", "README.md", ".ci/run"):
        assert (ROOT / name).is_file(), name


def test_telemetry_and_analytics_never_import_service() -> None:
    """Dependencies flow one way: service may import telemetry, never the reverse; analytics neither."""
    offenders = []
    for package in ("telemetry", "analytics"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"^\s*(from|import)\s+service\b", path.read_text(), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed; it comes with the project's test extra")
    return found


def test_ruff_is_clean() -> None:
    """`ruff check` and `ruff format --check` find nothing."""
    ruff = _tool("ruff")
    check = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict_is_clean() -> None:
    """mypy in strict mode (configured in pyproject.toml) finds nothing."""
    mypy = _tool("mypy")
    result = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
