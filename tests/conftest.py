"""Shared fixtures: a real PostgreSQL per session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.runtime import Runtime
from service.settings import Settings
from tests.support.pg import PgCluster

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session", autouse=True)
def user_data_home() -> Iterator[Path]:
    """A scratch XDG_DATA_HOME for the run: a default data directory (the platform's, for
    settings and commands without REELTRACE_DATA_DIR) never lands in the user's own."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-xdg-"))
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(root)
    yield root
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's embedded PostgreSQL, with a migrated template database.

    Its directory is outside pytest's basetemp: pytest prunes old basetemp
    directories at start-up, which would pull the data out from under a cluster
    that another, concurrent pytest run is still using.
    """
    root = Path(tempfile.mkdtemp(prefix="reeltrace-pg-"))
    cluster = PgCluster(root)
    cluster.create_template()
    yield cluster
    cluster.server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = pg_cluster.new_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        sim_latency_seconds=0,
        sim_jitter_seconds=0,
        retry_base_seconds=0,
        poll_interval_seconds=0.01,
    )


@pytest.fixture
async def runtime(settings: Settings, database_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime.build(settings, database_url, source_service="test")
    yield rt
    await rt.close()


def require_tool(name: str, path: str | None) -> str:
    """The tool's path; skip on a laptop without it, fail in CI where it must exist."""
    if path:
        return path
    message = f"{name} is not installed (CI installs it in .ci/run)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
