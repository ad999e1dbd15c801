"""Alembic environment: runs migrations on a synchronous psycopg connection.

The URL comes from the caller (`service.db.migrate`) through the config's
`sqlalchemy.url`, or from `DATABASE_URL` when alembic is run by hand.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from service.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # Run by hand (`alembic ...`) there is no ini file, hence no main section to read.
    url = config.get_section(config.config_ini_section, {}).get("sqlalchemy.url") or os.environ.get(
        "DATABASE_URL"
    )
    if not url:
        raise RuntimeError(
            "set DATABASE_URL (or use `reeltrace migrate`, which also knows the embedded server)"
        )
    from service.db.urls import sqlalchemy_url

    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
