"""Fixtures of the chaos suite: a PostgreSQL of its own per scenario, and its processes' setup."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.support import chaos_settings, create_key
from tests.support.pg import PgCluster


@dataclass
class Stage:
    """One scenario's setting: its cluster, database, data directory, environment and key."""

    cluster: PgCluster
    database_url: str
    data_dir: Path
    env: dict[str, str]
    key: str
    root: Path

    @property
    def ledger_log(self) -> Path:
        return self.root / "chaos-ledger.log"

    def logs(self) -> list[Path]:
        return sorted(self.root.glob("*.log"))


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    """A cluster this scenario may stop and start, a migrated database and an admin key."""
    root = Path(tempfile.mkdtemp(prefix="reeltrace-pg-chaos-"))
    cluster = PgCluster(root)
    cluster.create_template()
    try:
        url = cluster.url(cluster.new_database())
        data_dir = tmp_path / "data"
        env = chaos_settings(url, data_dir)
        key = create_key(env, tmp_path)
        yield Stage(cluster, url, data_dir, env, key, tmp_path)
    finally:
        cluster.server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
