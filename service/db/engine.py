"""Engines and the resolved database URL.

`resolve_database_url` decides between `DATABASE_URL` and the embedded server; the
engine factory turns the URL into a pooled async engine on psycopg 3.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.db.embedded import start_embedded
from service.db.urls import sqlalchemy_url
from service.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the embedded server (started if need be)."""
    return resolve_database(settings)[0]


def resolve_database(settings: Settings) -> tuple[str, Any]:
    """The URL, and the embedded server handle (None with DATABASE_URL)."""
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


def create_engine(url: str, settings: Settings, *, application_name: str = "reeltrace") -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        # A dead connection is discovered by the failed statement and discarded; the
        # tracker then journals the write instead of waiting on a reconnect loop.
        pool_recycle=1800,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )
