"""A revision's functions file runs on the way up, and the file before it on the way down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, pool, text

from migrations.schema_functions import downgrade_functions, upgrade_functions
from service.db.urls import sqlalchemy_url


def functions_dir(tmp_path: Path) -> Path:
    """Two revisions' files, each defining reeltrace_test_version() as its own number."""
    for revision in ("0001", "0002"):
        body = f"CREATE OR REPLACE FUNCTION reeltrace_test_version() RETURNS text LANGUAGE sql AS $$ SELECT '{revision}' $$;"
        (tmp_path / f"{revision}.sql").write_text(body)
    return tmp_path


def run(url: str, step: Callable[[], None]) -> str | None:
    """Run a migration step as Alembic would, then read which file's definition is in place."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            with Operations.context(MigrationContext.configure(conn)):
                step()
            found = conn.execute(text("SELECT proname FROM pg_proc WHERE proname = 'reeltrace_test_version'"))
            if found.first() is None:
                return None
            return str(conn.execute(text("SELECT reeltrace_test_version()")).scalar_one())
    finally:
        engine.dispose()


def test_upgrade_runs_the_revisions_own_file(database_url: str, tmp_path: Path) -> None:
    """Upgrading to a revision with a functions file puts that file's definitions in place."""
    directory = functions_dir(tmp_path)
    assert run(database_url, lambda: upgrade_functions("0001", directory)) == "0001"
    assert run(database_url, lambda: upgrade_functions("0002", directory)) == "0002"


def test_downgrade_puts_back_the_file_before(database_url: str, tmp_path: Path) -> None:
    """Downgrading a revision with a functions file restores the previous file's definitions."""
    directory = functions_dir(tmp_path)
    run(database_url, lambda: upgrade_functions("0002", directory))
    assert run(database_url, lambda: downgrade_functions("0002", directory)) == "0001"


def test_a_revision_without_a_file_runs_nothing(database_url: str, tmp_path: Path) -> None:
    """A revision with no functions file of its own leaves the definitions as they are, both ways."""
    directory = functions_dir(tmp_path)
    assert run(database_url, lambda: upgrade_functions("0003", directory)) is None
    run(database_url, lambda: upgrade_functions("0002", directory))
    assert run(database_url, lambda: downgrade_functions("0003", directory)) == "0002"
