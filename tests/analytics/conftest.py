"""Fixtures for the analytics tests: generated rows in PostgreSQL and exported snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics.export import ExportResult, export_snapshot
from service.db.urls import libpq_dsn
from tests.analytics.datagen import Generated, generate
from tests.support.pg import PgCluster


def pg_rows(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql.encode(), params).fetchall()


def pg_exec(dsn: str, sql: str, params: Any = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.encode(), params)


@pytest.fixture
def dsn(database_url: str) -> str:
    """A libpq DSN for this test's fresh database."""
    return libpq_dsn(database_url)


@pytest.fixture
def snapshot_root(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


@dataclass(frozen=True)
class Exported:
    """A database filled with generated rows, and its first snapshot."""

    dsn: str
    root: Path
    generated: Generated
    result: ExportResult


@pytest.fixture(scope="module")
def exported(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """Generated requests (with stages and events) over 120 days, exported once, read-only."""
    name = pg_cluster.new_database()
    dsn = libpq_dsn(pg_cluster.url(name))
    generated = generate(dsn, 3000, span_days=120, guilds=6, users=80, tricky_share=0.05)
    root = tmp_path_factory.mktemp("snapshot")
    result = export_snapshot(dsn, root)
    yield Exported(dsn, root, generated, result)
    pg_cluster.drop_database(name)
