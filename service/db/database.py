"""The persistence boundary: every runtime statement runs here.

A `psycopg_pool.AsyncConnectionPool` of autocommit connections (psycopg's prepared
statements on: a statement run `prepare_threshold` times on a connection is
prepared there and then sent as a bind and execute only). A single statement needs
no transaction block, so it skips the BEGIN and COMMIT round trips one would add;
callers that need several statements in one transaction (API keys, the corpus, the
rollups' rebuild) take `transaction()`, and a session-level lock (retention's) takes
`connection()`.

Each statement is a CLIENT span named by its summary (`telemetry.database.query_span`)
unless the caller records the work itself (`traced=False`: a tracking write is
recorded as what it did, `tracking.stage_completed`, not as the SQL it ran).

Driver errors stop here (`service.db.errors`): an unreachable server is
`DatabaseUnavailable`, and fails fast while it lasts (`service.db.outage`). A
connection that broke is discarded by the pool; one whose statement was cancelled is
cancelled on the server too and goes back to the pool idle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, Self

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.db.errors import UNREACHABLE_DETAIL, translated
from service.db.outage import Outage
from service.db.statement import Statement, as_sql
from service.db.urls import libpq_dsn
from service.errors import DatabaseUnavailable
from telemetry.database import query_span

Params = Mapping[str, Any] | None
Row = dict[str, Any]
Conn = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Conn]

CONNECT_TIMEOUT_S = 5
# Waiting for a connection while every one is busy (not while the server is down: that
# fails at once, see `service.db.outage`).
POOL_TIMEOUT_S = 30.0
# A connection is replaced after this long, so server-side state (plans, caches) stays fresh.
MAX_LIFETIME_S = 1800.0


@dataclass(slots=True)
class Timing:
    """Where one statement's time went: waiting for a pooled connection, then running.

    Kept apart because a query that waited for the pool is not a slow query: the two
    point an operator at different fixes (pool size against the query's plan).
    """

    wait_s: float = 0.0
    run_s: float = 0.0


def _watched(failed: Callable[[], None]) -> type[Conn]:
    """A connection class whose failed connects (made by the pool) mark the outage."""

    class WatchedConnection(psycopg.AsyncConnection[DictRow]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                return await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError:
                failed()
                raise

    return WatchedConnection


async def _run(conn: Conn, sql: str, params: Params) -> tuple[list[Row], int]:
    cursor = await conn.execute(sql, params)
    rows = await cursor.fetchall() if cursor.description is not None else []
    return rows, cursor.rowcount


class Session:
    """One pooled connection lent for several statements (see `Database.transaction`)."""

    __slots__ = ("_conn", "_database")

    def __init__(self, database: Database, conn: Conn) -> None:
        self._database = database
        self._conn = conn

    async def fetch(self, statement: Statement, params: Params = None, *, traced: bool = True) -> list[Row]:
        """Run one statement; its rows as dicts (none for a statement returning none)."""
        return (await self._statement(statement, params, traced))[0]

    async def fetch_one(
        self, statement: Statement, params: Params = None, *, traced: bool = True
    ) -> Row | None:
        """Run one statement; its first row, or None."""
        rows = (await self._statement(statement, params, traced))[0]
        return rows[0] if rows else None

    async def execute(self, statement: Statement, params: Params = None, *, traced: bool = True) -> int:
        """Run one statement; the number of rows it affected."""
        return (await self._statement(statement, params, traced))[1]

    async def _statement(self, statement: Statement, params: Params, traced: bool) -> tuple[list[Row], int]:
        sql = as_sql(statement)
        try:
            if not traced:
                return await _run(self._conn, sql, params)
            with query_span(sql):
                return await _run(self._conn, sql, params)
        except psycopg.Error as exc:
            self._database.failed(exc, self._conn)


class Database:
    """The pool, the statement runner and the outage detector of one process."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        application_name: str = "reeltrace",
        timeout: float = POOL_TIMEOUT_S,
        prepare_threshold: int | None = 5,
    ) -> None:
        self._conninfo = libpq_dsn(url)
        self._sizes = (min_size, max_size)
        self._timeout = timeout
        connect = {"application_name": application_name, "connect_timeout": CONNECT_TIMEOUT_S}
        self._kwargs: dict[str, Any] = {
            **connect,
            "autocommit": True,
            "row_factory": dict_row,
            "prepare_threshold": prepare_threshold,
        }
        self._outage = Outage(self._conninfo, connect, self._replace_pool)
        self._closing: set[asyncio.Task[None]] = set()
        self._pool = self._new_pool()
        self._opening: asyncio.Future[None] | None = None
        self._opened = False

    @classmethod
    def from_settings(
        cls, url: str, pool_size: int, max_overflow: int, *, application_name: str = "reeltrace"
    ) -> Database:
        """Grows on demand up to `pool_size + max_overflow` connections, as many as callers need."""
        return cls(url, max_size=pool_size + max_overflow, application_name=application_name)

    @property
    def down(self) -> bool:
        """True while PostgreSQL is known to be unreachable."""
        return self._outage.down

    def stats(self) -> dict[str, int]:
        """The pool's figures (psycopg_pool's `get_stats`: pool_size, pool_available, ...)."""
        return self._pool.get_stats()

    async def fetch(
        self,
        statement: Statement,
        params: Params = None,
        *,
        timing: Timing | None = None,
        traced: bool = True,
    ) -> list[Row]:
        """Run one statement in autocommit on a pooled connection; its rows as dicts.

        With `timing`, records how long the statement waited for a connection and how long
        it then ran (filled in only when it succeeds). With `traced`, the statement is a
        span named by its summary.
        """
        sql = as_sql(statement)
        if not traced:
            return (await self._statement(sql, params, timing))[0]
        with query_span(sql):
            return (await self._statement(sql, params, timing))[0]

    async def fetch_one(
        self,
        statement: Statement,
        params: Params = None,
        *,
        timing: Timing | None = None,
        traced: bool = True,
    ) -> Row | None:
        """Run one statement; its first row, or None."""
        rows = await self.fetch(statement, params, timing=timing, traced=traced)
        return rows[0] if rows else None

    async def execute(self, statement: Statement, params: Params = None, *, traced: bool = True) -> int:
        """Run one statement; the number of rows it affected."""
        sql = as_sql(statement)
        if not traced:
            return (await self._statement(sql, params, None))[1]
        with query_span(sql):
            return (await self._statement(sql, params, None))[1]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """A connection inside one transaction: committed when the block ends, rolled back if it raises."""
        pool, conn = await self._acquire()
        try:
            try:
                async with conn.transaction():
                    yield Session(self, conn)
            except psycopg.Error as exc:  # the COMMIT itself
                self.failed(exc, conn)
        finally:
            await pool.putconn(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Session]:
        """A connection in autocommit held for the block (a session-level lock lives as long)."""
        pool, conn = await self._acquire()
        try:
            yield Session(self, conn)
        finally:
            await pool.putconn(conn)

    async def reset(self) -> None:
        """Close every pooled connection; the next statement connects anew."""
        await self._replace_pool()
        if self._closing:
            await asyncio.gather(*self._closing)

    async def close(self) -> None:
        """Close the pool (and any replaced one still closing)."""
        await self._pool.close()
        if self._closing:
            await asyncio.gather(*self._closing)

    def failed(self, exc: psycopg.Error, conn: Conn) -> NoReturn:
        """Raise the domain error for `exc`; a connection that broke marks the outage."""
        if conn.broken:
            self._outage.lost(type(exc).__name__)
        domain = translated(exc)
        if domain is None:
            raise exc
        raise domain from exc

    async def _statement(self, sql: str, params: Params, timing: Timing | None) -> tuple[list[Row], int]:
        asked = time.perf_counter()
        pool, conn = await self._acquire()
        try:
            started = time.perf_counter()
            result = await _run(conn, sql, params)
            if timing is not None:
                timing.wait_s, timing.run_s = started - asked, time.perf_counter() - started
            return result
        except psycopg.Error as exc:
            self.failed(exc, conn)
        finally:
            # Always back to its pool, which discards it if it broke (and closes it if
            # that pool was replaced meanwhile).
            await pool.putconn(conn)

    async def _acquire(self) -> tuple[Pool, Conn]:
        if self._outage.down:
            await self._outage.recover()
        pool = self._pool
        if not self._opened:
            await self._open(pool)
        try:
            if pool.get_stats()["pool_available"]:
                return pool, await pool.getconn(self._timeout)
            return pool, await self._getconn_watching(pool)
        except psycopg.OperationalError as exc:  # PoolTimeout, PoolClosed
            raise DatabaseUnavailable(UNREACHABLE_DETAIL) from exc

    async def _open(self, pool: Pool) -> None:
        # Opened on first use, inside the loop that uses it; callers arriving meanwhile share it.
        if self._opening is None:
            self._opening = asyncio.ensure_future(pool.open())
        await asyncio.shield(self._opening)
        self._opened = pool is self._pool

    async def _getconn_watching(self, pool: Pool) -> Conn:
        """Wait for a connection the pool is opening, unless the server turns out to be down."""
        getting = asyncio.ensure_future(pool.getconn(self._timeout))
        lost = asyncio.ensure_future(self._outage.wait_lost())
        try:
            await asyncio.wait((getting, lost), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self._abandon(pool, getting)
            raise
        finally:
            lost.cancel()
        if getting.done():
            return getting.result()
        await self._abandon(pool, getting)
        raise DatabaseUnavailable(UNREACHABLE_DETAIL)

    @staticmethod
    async def _abandon(pool: Pool, getting: asyncio.Future[Conn]) -> None:
        # A connection handed over just as the wait ended goes back, never stranded.
        getting.cancel()
        try:
            conn = await getting
        except BaseException:
            return
        await pool.putconn(conn)

    def _new_pool(self) -> Pool:
        pool: Pool | None = None

        def failed() -> None:
            if pool is self._pool:  # a replaced pool's late failures are old news
                self._outage.lost("connect failed")

        min_size, max_size = self._sizes
        pool = AsyncConnectionPool(
            self._conninfo,
            kwargs=self._kwargs,
            connection_class=_watched(failed),
            min_size=min_size,
            max_size=max_size,
            timeout=self._timeout,
            max_lifetime=MAX_LIFETIME_S,
            open=False,
        )
        return pool

    async def _replace_pool(self) -> None:
        """After an outage: a fresh pool, the old one (dead connections, backoff) closed aside."""
        old, self._pool = self._pool, self._new_pool()
        self._opening, self._opened = None, False
        closing = asyncio.ensure_future(old.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
