"""Databases for the pool's tests: one on the shared cluster, one on a cluster a test may stop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.db.database import Database
from tests.support.pg import PgCluster


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """One connection at most, so every statement below goes through the same one."""
    db = Database(database_url, max_size=1)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    cluster = PgCluster(tmp_path / "own-pg")
    cluster.create_template()
    yield cluster
    cluster.server.cleanup()
