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


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for path in sorted(SERVICE.rglob("*.py"))}


def _named_sql(modules: dict[Path, ast.Module]) -> dict[str, NamedSql]:
    """Each module-level `NAME = NamedSql(package, filename)` of the service, by NAME."""
    found = {}
    for tree in modules.values():
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "NamedSql"
                and isinstance(node.targets[0], ast.Name)
            ):
                package, filename = (arg.value for arg in node.value.args if isinstance(arg, ast.Constant))
                found[node.targets[0].id] = NamedSql(str(package), str(filename))
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
    """Every `NAME["query"]` the code looks up is in NAME's file, and every query of every file is
    named somewhere in the code (no dead SQL; a builder names its fragments in a table)."""
    modules = _modules()
    named = _named_sql(modules)
    assert {Path(n.path).name for n in named.values()} == {p.name for p in SQL_FILES}
    strings: set[str] = set()
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id in named
                and isinstance(node.slice, ast.Constant)
            ):
                file = named[node.value.id]
                assert node.slice.value in file.names(), f"{path}: {node.slice.value!r} not in {file.path}"
    for file in named.values():
        assert not file.names() - strings, f"{file.path}: used nowhere: {file.names() - strings}"


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
