"""Settings: defaults, the spec's variable names, and errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.settings import RateLimit, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "REQUEST_RETENTION_DAYS", "REELTRACE_PORT", "REELTRACE_RATE_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_embedded_default_without_database_url() -> None:
    """No DATABASE_URL means the embedded server in the user's data directory, unlimited retention."""
    settings = load_settings()
    assert settings.database_url is None
    assert settings.data_dir == Path(os.environ["XDG_DATA_HOME"]) / "reeltrace"
    assert settings.request_retention_days is None
    assert settings.generation_backend == "simulated"


def test_spec_variables_are_read_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL and REQUEST_RETENTION_DAYS are read under those exact names."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/reeltrace")
    monkeypatch.setenv("REQUEST_RETENTION_DAYS", "30")
    settings = load_settings()
    assert settings.database_url == "postgresql://u:p@db:5432/reeltrace"
    assert settings.request_retention_days == 30


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REELTRACE_PORT", "eighty"),
        ("REQUEST_RETENTION_DAYS", "0"),
        ("REELTRACE_RATE_LIMIT", "lots"),
        ("DATABASE_URL", "mysql://x"),
        ("REELTRACE_DATABASE_URL", "mysql://x"),
        ("REELTRACE_SIM_FAILURE_RATE", "1.5"),
        ("REELTRACE_JAEGER_URL", "notaurl"),
        ("REELTRACE_PUBLIC_BASE_URL", "ftp://files"),
        ("REELTRACE_API_URL", "localhost:8000"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """An invalid value fails with a message that names its environment variable, exactly."""
    monkeypatch.delenv("REELTRACE_DATABASE_URL", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=rf"Invalid setting {variable}:"):
        load_settings()


def test_rate_limit_parses() -> None:
    """`5/minute` is five per sixty seconds."""
    rate = RateLimit.parse("5/minute")
    assert (rate.limit, rate.window_seconds) == (5, 60)


def test_serve_refuses_to_start_on_an_invalid_setting(tmp_path: Path) -> None:
    """`reeltrace serve` with a bad variable prints one line naming it, no traceback, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "serve"],
        env={"REELTRACE_PORT": "99999", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "REELTRACE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_heartbeat_must_be_shorter_than_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lease shortened below the heartbeat (leases would lapse between renewals, and workers take
    each other's running requests) is refused, naming both variables."""
    monkeypatch.setenv("REELTRACE_LEASE_SECONDS", "5")
    monkeypatch.delenv("REELTRACE_HEARTBEAT_SECONDS", raising=False)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        "Invalid setting REELTRACE_HEARTBEAT_SECONDS: 10 s must be shorter than"
        " REELTRACE_LEASE_SECONDS (5 s); a third of it is usual"
    )
    monkeypatch.setenv("REELTRACE_HEARTBEAT_SECONDS", "1.5")
    assert load_settings().heartbeat_seconds == 1.5


def test_production_refuses_to_start_without_database_url(tmp_path: Path) -> None:
    """`REELTRACE_ENV=production` without DATABASE_URL stops `serve` with one line naming both
    variables, before any embedded PostgreSQL is created."""
    result = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "serve"],
        env={
            "REELTRACE_ENV": "production",
            "REELTRACE_DATA_DIR": str(tmp_path / "data"),
            "PATH": "/usr/bin:/bin",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "REELTRACE_ENV=production needs DATABASE_URL" in lines[0]
    assert not (tmp_path / "data" / "pgdata").exists()


def test_production_with_database_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """With DATABASE_URL, `REELTRACE_ENV=production` loads."""
    monkeypatch.setenv("REELTRACE_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/reeltrace")
    assert load_settings().env == "production"


def test_vertex_embeddings_need_a_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """REELTRACE_EMBEDDINGS_BACKEND=vertex without GOOGLE_CLOUD_PROJECT is refused, naming both."""
    monkeypatch.setenv("REELTRACE_EMBEDDINGS_BACKEND", "vertex")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(
        ConfigurationError, match="REELTRACE_EMBEDDINGS_BACKEND=vertex needs GOOGLE_CLOUD_PROJECT"
    ):
        load_settings()


def test_retrieval_defaults_to_the_corpus_in_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrieval is the real PostgreSQL search unless simulated is chosen; embeddings are off by default."""
    monkeypatch.delenv("REELTRACE_RETRIEVAL_BACKEND", raising=False)
    monkeypatch.delenv("REELTRACE_EMBEDDINGS_BACKEND", raising=False)
    settings = load_settings()
    assert (settings.retrieval_backend, settings.embeddings_backend) == ("postgres", "none")
