"""Applying and inspecting the Alembic migrations in `migrations/`.

The Alembic configuration lives in `[tool.alembic]` of `pyproject.toml`; the
migrations directory is located through the installed `migrations` package, so this
works from a checkout and from an installed wheel alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import OperationalError

import migrations
from service.db.urls import redact, sqlalchemy_url
from service.errors import DatabaseUnavailable

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(url: str) -> Config:
    pyproject = MIGRATIONS_DIR.parent / "pyproject.toml"
    cfg = Config(toml_file=pyproject) if pyproject.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A server that cannot be reached is a one-line error naming it, not a driver traceback."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {redact(url)} (DATABASE_URL): {reason}"
        ) from exc


def upgrade(url: str, revision: str = "head") -> None:
    with _reaching(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    with _reaching(url):
        command.downgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://localhost/x")).get_current_head()


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with _reaching(url), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_at_head(url: str) -> bool:
    return current_revision(url) == head_revision()
