"""While PostgreSQL is down, statements fail at once as DatabaseUnavailable, and recover after."""

from __future__ import annotations

import asyncio

import pytest

from service.db.database import Database
from service.errors import DatabaseUnavailable
from tests.support.pg import PgCluster

# A pool that would make a caller wait this long for a connection: a statement that
# returns at all while the server is down did not wait for the pool.
PATIENT_POOL_S = 3600.0


async def test_a_statement_while_postgres_is_stopped_raises_unavailable(own_cluster: PgCluster) -> None:
    """With the server stopped under a warm pool, statements raise DatabaseUnavailable and the
    database is marked down."""
    database = Database(own_cluster.url(own_cluster.new_database()), timeout=PATIENT_POOL_S)
    try:
        assert await database.fetch("SELECT 1 AS one") == [{"one": 1}]
        own_cluster.stop()
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable):
                await database.fetch("SELECT 1 AS one")
        assert database.down
    finally:
        await database.close()


async def test_a_pool_opened_while_postgres_is_stopped_fails_instead_of_waiting(
    own_cluster: PgCluster,
) -> None:
    """A first statement, with no connection ever made, raises DatabaseUnavailable rather than
    waiting out the pool's timeout."""
    url = own_cluster.url(own_cluster.new_database())
    own_cluster.stop()
    database = Database(url, timeout=PATIENT_POOL_S)
    try:
        async with asyncio.timeout(PATIENT_POOL_S / 10):  # a guard against hanging, not a measure
            with pytest.raises(DatabaseUnavailable):
                await database.fetch("SELECT 1 AS one")
    finally:
        await database.close()


async def test_statements_succeed_again_once_postgres_is_back(own_cluster: PgCluster) -> None:
    """After an outage the next statement reconnects on its own (a fresh pool) and succeeds."""
    database = Database(own_cluster.url(own_cluster.new_database()), max_size=2, timeout=PATIENT_POOL_S)
    try:
        await database.fetch("SELECT 1 AS one")
        own_cluster.stop()
        with pytest.raises(DatabaseUnavailable):
            await database.fetch("SELECT 1 AS one")
        own_cluster.start()
        assert await database.fetch("SELECT 1 AS one") == [{"one": 1}]
        assert not database.down
    finally:
        await database.close()
