"""Engines and the resolved database URL.

`resolve_database_url` decides between `DATABASE_URL` and the embedded server; the
engine factory turns the URL into a pooled async engine on psycopg 3, whose
statements run through SQLAlchemy (API keys, retention) are CLIENT spans named by
their summary. Statements run on the pooled connection directly are traced where
they run (`service.db.statements`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.db.embedded import start_embedded
from service.db.urls import sqlalchemy_url
from service.settings import Settings
from telemetry.database import end_query_span, start_query_span

_SPAN = "_reeltrace_span"


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the embedded server (started if need be)."""
    return resolve_database(settings)[0]


def resolve_database(settings: Settings) -> tuple[str, Any]:
    """The URL, and the embedded server handle (None with DATABASE_URL)."""
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)


def create_engine(url: str, settings: Settings, *, application_name: str = "reeltrace") -> AsyncEngine:
    engine = _create_engine(url, settings, application_name)
    trace_statements(engine)
    return engine


def _create_engine(url: str, settings: Settings, application_name: str) -> AsyncEngine:
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


def trace_statements(engine: AsyncEngine) -> None:
    """A span per statement SQLAlchemy runs on `engine`, with its summary, never its text."""

    def before(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if context is not None:
            setattr(context, _SPAN, start_query_span(statement))

    def after(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        end_query_span(_take_span(context))

    def failed(exception_context: ExceptionContext) -> None:
        error = exception_context.original_exception
        end_query_span(_take_span(exception_context.execution_context), error)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)


def _take_span(context: ExecutionContext | None) -> Any:
    span = getattr(context, _SPAN, None)
    if span is not None:
        setattr(context, _SPAN, None)
    return span
