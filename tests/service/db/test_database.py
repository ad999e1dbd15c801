"""Statements on the pool: results, transactions, errors, and what goes back to the pool."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text

from service.db.database import Database
from service.db.statement import as_sql
from service.db.urls import libpq_dsn
from service.errors import DatabaseUnavailable, InvalidStatusTransition


async def backend_pid(database: Database) -> int:
    row = await database.fetch_one("SELECT pg_backend_pid() AS pid")
    assert row is not None
    return int(row["pid"])


async def test_rows_come_back_as_dicts_with_psycopg_binds(database: Database) -> None:
    """A statement with `%(name)s` binds returns its rows as dicts, and none when it selects none."""
    rows = await database.fetch("SELECT %(n)s::int + 1 AS next, 'a%%b' AS literal", {"n": 41})
    assert rows == [{"next": 42, "literal": "a%b"}]
    assert await database.fetch("SELECT 1 AS one WHERE false") == []


async def test_a_text_clause_runs_compiled_to_psycopg_binds(database: Database) -> None:
    """A SQLAlchemy `text()` statement is compiled to `%(name)s` binds, its literal `%` kept."""
    statement = text("SELECT CAST(:n AS int) + 1 AS next, 'a%b' AS literal, :s || '%' AS bound")
    assert "%(n)s" in as_sql(statement)
    assert await database.fetch(statement, {"n": 41, "s": "x"}) == [
        {"next": 42, "literal": "a%b", "bound": "x%"}
    ]


async def test_execute_counts_the_rows_affected(database: Database) -> None:
    """`execute` returns how many rows the statement changed."""
    await database.execute("CREATE TABLE probe_count (v int)")
    assert await database.execute("INSERT INTO probe_count SELECT generate_series(1, 3)") == 3


async def test_a_statement_commits_on_its_own(database: Database, database_url: str) -> None:
    """A statement outside `transaction()` is committed when it returns (autocommit)."""
    await database.execute("CREATE TABLE probe_commit (v int)")
    await database.execute("INSERT INTO probe_commit VALUES (1)")
    other = Database(database_url)
    try:
        assert await other.fetch("SELECT v FROM probe_commit") == [{"v": 1}]
    finally:
        await other.close()


async def test_a_transaction_that_raises_leaves_nothing(database: Database) -> None:
    """Statements of a `transaction()` block that raises are rolled back together."""
    await database.execute("CREATE TABLE probe_tx (v int)")

    async def insert_then_fail() -> None:
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO probe_tx VALUES (1)")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await database.fetch("SELECT v FROM probe_tx") == []


async def test_a_sql_error_keeps_the_connection(database: Database) -> None:
    """A SQL error surfaces as psycopg raised it and leaves the connection in the pool."""
    pid = await backend_pid(database)
    with pytest.raises(psycopg.errors.DivisionByZero):
        await database.fetch("SELECT 1 / %(z)s::int AS x", {"z": 0})
    assert await backend_pid(database) == pid


async def test_the_status_guard_becomes_an_invalid_transition(database: Database) -> None:
    """The state-machine trigger's SQLSTATE is translated to InvalidStatusTransition."""
    with pytest.raises(InvalidStatusTransition):
        await database.execute("DO $$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = 'RT001'; END $$")


async def test_a_dead_connection_is_reported_unavailable_then_replaced(
    database: Database, database_url: str
) -> None:
    """A statement on a connection the server dropped raises DatabaseUnavailable; the next reconnects."""
    pid = await backend_pid(database)
    killer = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        await killer.close()
    with pytest.raises(DatabaseUnavailable):
        await database.fetch("SELECT 1 AS one")
    assert await backend_pid(database) != pid
    assert not database.down


async def test_a_cancelled_statement_returns_its_connection_to_the_pool(
    database: Database, database_url: str
) -> None:
    """Cancelling a running statement cancels it on the server and puts its connection back, idle."""
    pid = await backend_pid(database)
    task = asyncio.create_task(database.fetch("SELECT pg_sleep(30)"))
    while not await _sleeping(database_url, pid):
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = database.stats()
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1)
    assert await backend_pid(database) == pid


async def _sleeping(database_url: str, pid: int) -> bool:
    # Asked on a connection of its own: the pool's only one is busy sleeping.
    async with await psycopg.AsyncConnection.connect(libpq_dsn(database_url), autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE '%%pg_sleep%%'", (pid,)
        )
        return await cursor.fetchone() is not None


async def test_a_cancellation_while_waiting_for_a_connection_strands_none(database: Database) -> None:
    """A statement cancelled while the pool was still connecting leaves the pool whole and usable."""
    task = asyncio.create_task(database.fetch("SELECT 1 AS one"))
    await asyncio.sleep(0)  # waiting: the pool had no connection yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await database.fetch("SELECT 1 AS one") == [{"one": 1}]
    stats = database.stats()
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1)


async def test_statements_run_often_are_prepared(database: Database) -> None:
    """A statement run more than `prepare_threshold` times is prepared on its connection."""
    for _ in range(6):
        await database.fetch("SELECT %(n)s::int AS prepared_probe", {"n": 1})
    rows = await database.fetch(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%%prepared_probe%%'"
    )
    assert rows == [{"n": 1}]
