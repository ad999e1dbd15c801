"""A SQLAlchemy engine on a test's database, for arranging and inspecting rows.

The service runs its statements on `service.db.Database`; a test that sets rows up
or reads them back by hand uses plain SQLAlchemy here. No pool: a connection lives
for its `connect()` / `begin()` block, so nothing outlives the test's event loop.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from service.db.urls import sqlalchemy_url


class HasDatabaseUrl(Protocol):
    database_url: str


_engines: dict[str, AsyncEngine] = {}


def sql_engine(runtime: HasDatabaseUrl | str) -> AsyncEngine:
    """An engine on the runtime's database (or on this URL)."""
    url = runtime if isinstance(runtime, str) else runtime.database_url
    if url not in _engines:
        _engines[url] = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    return _engines[url]
