"""Named SQL: the loader, every `.sql` file of the service, and every name the code looks up."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import pytest
from psycopg._queries import PostgresQuery

from service.db.namedsql import NamedSql, UnknownQuery, parse

SERVICE = Path(__file__).resolve().parents[3] / "service"
SQL_FILES = sorted(SERVICE.rglob("sql/*.sql"))
# A block that is a whole statement starts with one of these; the others are fragments
# a builder joins to a statement.
STATEMENT_VERBS = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "SET", "LOCK")


def _named_sql_uses() -> list[tuple[Path, NamedSql, set[str]]]:
    """Each module's NamedSql constants, with the string constants the module uses."""
    found = []
    for path in sorted(SERVICE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        strings = {
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "NamedSql"
            ):
                package, filename = (arg.value for arg in node.value.args if isinstance(arg, ast.Constant))
                found.append((path, NamedSql(str(package), str(filename)), strings))
    return found


def test_a_file_is_split_into_named_statements_without_their_comments() -> None:
    """Blocks are keyed by their header; comment lines under it and the final `;` are not sent."""
    text = "-- a file comment\n\n-- name: one\n-- why\nSELECT 1;\n\n-- name: two\nSELECT %(x)s\n"
    assert parse(text) == {"one": "SELECT 1", "two": "SELECT %(x)s"}


def test_a_name_defined_twice_is_refused() -> None:
    """Two blocks of one name in a file are an error naming it."""
    with pytest.raises(ValueError, match="'one' is defined twice"):
        parse("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")


def test_a_missing_name_is_a_clear_error() -> None:
    """Looking up a name its file does not define raises UnknownQuery naming the file."""
    keys = NamedSql("service.auth", "sql/keys.sql")
    with pytest.raises(UnknownQuery, match=r"no query named 'nope' in service/auth/sql/keys\.sql"):
        keys["nope"]


def test_every_sql_file_of_the_service_parses() -> None:
    """Each `sql/*.sql` file of the service parses into at least one named statement."""
    assert SQL_FILES
    for path in SQL_FILES:
        assert parse(path.read_text(), str(path)), path


def test_every_name_the_code_uses_exists_and_every_statement_is_used() -> None:
    """Every `X["name"]` a module looks up is in its file, and every name of a file is used
    by the module that loads it (no dead SQL)."""
    uses = _named_sql_uses()
    assert {Path(n.path).name for _, n, _ in uses} >= {p.name for p in SQL_FILES}
    for path, named, strings in uses:
        tree = ast.parse(path.read_text())
        looked_up = {
            node.slice.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
            and isinstance(node.value, ast.Name)
            and node.value.id.isupper()
        }
        missing = {n for n in looked_up if n.islower() and n not in named.names() and "_" in n}
        assert not missing, f"{path}: {missing} not in {named.path}"
        unused = named.names() - strings
        assert not unused, f"{named.path}: {unused} used nowhere in {path.name}"


async def test_every_statement_prepares_against_the_schema(database_url: str) -> None:
    """Every whole statement of every file is parsed and planned by PostgreSQL on the migrated
    schema (a protocol-level Parse: its tables, columns, functions and binds all resolve)."""
    failures = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for path in SQL_FILES:
            for name, statement in parse(path.read_text(), str(path)).items():
                if not statement.lstrip().upper().startswith(STATEMENT_VERBS):
                    continue
                query = PostgresQuery(psycopg.adapt.Transformer(conn))
                query.convert(statement.encode(), _Nulls())
                result = conn.pgconn.prepare(f"probe_{name}".encode(), query.query)
                if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    failures.append(f"{path.name}:{name}: {result.error_message.decode()}")
    assert failures == []


class _Nulls(dict[str, None]):
    """Parameters of any name, all NULL: enough for the binds to become $n placeholders."""

    def __missing__(self, key: str) -> None:
        return None
