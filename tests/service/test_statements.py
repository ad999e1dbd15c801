"""One statement on the pooled driver connection: results, errors, and what goes back to the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.engine import create_engine
from service.db.statements import compiled_sql, fetch_all
from service.errors import TrackingUnavailable
from service.settings import Settings
from service.tracking.repository import translate_errors


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # One kept connection, so every call below goes through the same pooled one.
    engine = create_engine(
        database_url, Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0)
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def backend_pid(engine: AsyncEngine) -> int:
    return int((await fetch_all(engine, text("SELECT pg_backend_pid() AS pid"), {}))[0]["pid"])


async def test_rows_come_back_as_dicts_and_binds_and_percent_signs_survive(engine: AsyncEngine) -> None:
    statement = text("SELECT CAST(:n AS int) + 1 AS next, 'a%b' AS literal, :s || '%' AS bound")
    assert "%(n)s" in compiled_sql(engine, statement)
    rows = await fetch_all(engine, statement, {"n": 41, "s": "x"})
    assert rows == [{"next": 42, "literal": "a%b", "bound": "x%"}]
    assert await fetch_all(engine, text("SELECT 1 AS one WHERE false"), {}) == []


async def test_statement_commits_on_its_own_and_the_connection_goes_back_transactional(
    engine: AsyncEngine,
) -> None:
    await fetch_all(engine, text("CREATE TABLE IF NOT EXISTS statements_probe (v int)"), {})
    await fetch_all(engine, text("INSERT INTO statements_probe VALUES (:v)"), {"v": 1})
    pid = await backend_pid(engine)
    # The same pooled connection, through SQLAlchemy: a rolled-back transaction
    # leaves nothing behind, so autocommit was switched off again on return.
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
        await conn.execute(text("INSERT INTO statements_probe VALUES (2)"))
        await conn.rollback()
    rows = await fetch_all(engine, text("SELECT v FROM statements_probe ORDER BY v"), {})
    assert rows == [{"v": 1}]


async def test_a_sql_error_keeps_the_connection(engine: AsyncEngine) -> None:
    pid = await backend_pid(engine)
    with pytest.raises(psycopg.errors.DivisionByZero):
        await fetch_all(engine, text("SELECT 1 / CAST(:z AS int) AS x"), {"z": 0})
    assert await backend_pid(engine) == pid


async def test_a_dead_connection_is_discarded_and_reported_unreachable(
    engine: AsyncEngine, database_url: str
) -> None:
    pid = await backend_pid(engine)
    other = create_engine(database_url, Settings(database_url=database_url))
    try:
        await fetch_all(other, text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()
    with pytest.raises(TrackingUnavailable):
        async with translate_errors():
            await fetch_all(engine, text("SELECT 1 AS one"), {})
    # The broken connection did not go back to the pool: the next call reconnects.
    assert await backend_pid(engine) != pid


async def test_a_cancelled_statement_discards_its_connection(engine: AsyncEngine) -> None:
    pid = await backend_pid(engine)
    task = asyncio.create_task(fetch_all(engine, text("SELECT pg_sleep(30)"), {}))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await backend_pid(engine) != pid


async def test_a_cancellation_while_connecting_leaves_the_new_connection_in_the_pool(
    engine: AsyncEngine,
) -> None:
    assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    task = asyncio.create_task(fetch_all(engine, text("SELECT 1 AS one"), {}))
    await asyncio.sleep(0)  # the task is now connecting: the pool had no connection
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Made, then returned, rather than dropped unclosed (a ResourceWarning at collection).
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    assert await fetch_all(engine, text("SELECT 1 AS one"), {}) == [{"one": 1}]
