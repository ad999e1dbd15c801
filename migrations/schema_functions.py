"""A revision's functions file: every PostgreSQL function and trigger as of that revision.

The current bodies live in the latest file of `migrations/functions/` (see the header
of `0013.sql`). A revision that changes one copies that file to its own revision's
name and changes the copy; its migration (written from `script.py.mako`, so also one
from `alembic revision --autogenerate`) calls these two helpers, which run the copy on
the way up and the file before it on the way down. A revision without a file of its
own runs nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

FUNCTIONS = Path(__file__).resolve().parent / "functions"


def _run_script(script: str) -> None:
    # The driver's own execute: the file is SQL as PostgreSQL reads it, with no
    # bind-parameter syntax for SQLAlchemy or psycopg to interpret.
    op.get_bind().connection.driver_connection.execute(script)  # type: ignore[union-attr]


def upgrade_functions(revision: str, directory: Path = FUNCTIONS) -> None:
    """Run `revision`'s functions file, if it has one (after the revision's table changes)."""
    own = directory / f"{revision}.sql"
    if own.exists():
        _run_script(own.read_text(encoding="utf-8"))


def downgrade_functions(revision: str, directory: Path = FUNCTIONS) -> None:
    """If `revision` has a functions file, put back the definitions of the file before it.

    Run before the revision's table changes are undone, so no function still names a
    column that is about to go. A function the revision added (absent from the earlier
    file) is dropped by the revision's own downgrade.
    """
    if not (directory / f"{revision}.sql").exists():
        return
    earlier = sorted(path for path in directory.glob("*.sql") if path.stem < revision)
    if earlier:
        _run_script(earlier[-1].read_text(encoding="utf-8"))
