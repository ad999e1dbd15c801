"""What a statement sends: SQL with psycopg's `%(name)s` binds.

A statement is a string written with those binds (what runs is what is written) or,
for statements still written with SQLAlchemy's `text()` (`:name` binds), a
`TextClause`, compiled once for the psycopg dialect: binds become `%(name)s` and a
literal `%` is doubled. No engine is needed to compile.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

Statement = str | TextClause

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


def as_sql(statement: Statement) -> str:
    """The SQL psycopg runs for `statement`."""
    if isinstance(statement, str):
        return statement
    return _compile(statement)


# Bounded: some statements are built per call (by cached builders); the cache holds
# the statement itself, so an evicted one's id is never mistaken for another's.
@lru_cache(maxsize=1024)
def _compile(statement: TextClause) -> str:
    return str(statement.compile(dialect=_DIALECT))
