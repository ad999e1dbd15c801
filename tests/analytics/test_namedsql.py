"""Named SQL: each query is defined once, under its name, and every one of them runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import namedsql, queries
from analytics.export import export_snapshot
from analytics.reader import open_snapshot
from tests.analytics.conftest import Exported

PARAMS = {"guild_id": "g", "bucket": "week", "top": 3, "since": None, "bin_ms": 1000}


def test_blocks_are_split_by_name_headers() -> None:
    """Text after `-- name: x` up to the next header is query x, without its trailing semicolon."""
    parsed = namedsql.parse("-- a comment\n-- name: one\nSELECT 1;\n\n-- name: two\nSELECT 2\n")
    assert parsed == {"one": "SELECT 1", "two": "SELECT 2"}


def test_a_name_defined_twice_is_refused() -> None:
    """Two queries under one name are an error, not a silent override."""
    with pytest.raises(ValueError, match="defined twice"):
        namedsql.parse("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")


def test_an_unknown_name_says_which_file() -> None:
    """Asking for a query that does not exist names the query and the file."""
    with pytest.raises(KeyError, match="nope"):
        namedsql.query("analytics.sql", "nope")


def test_every_analytics_query_runs_on_an_empty_snapshot(dsn: str, snapshot_root: Path) -> None:
    """Each named DuckDB query binds and runs against the snapshot views, even with no rows, naming its columns."""
    export_snapshot(dsn, snapshot_root)
    names = namedsql.load(queries.SQL_FILE)
    assert len(names) >= 10
    with open_snapshot(snapshot_root) as snap:
        for name, sql in names.items():
            wanted = {k: v for k, v in PARAMS.items() if f"${k}" in sql}
            result = snap.execute(sql, wanted)
            assert result.description, name
            assert isinstance(result.fetchall(), list), name


def test_every_analytics_query_returns_rows_on_a_filled_snapshot(exported: Exported) -> None:
    """On a snapshot of generated traffic, each named DuckDB query answers with at least one row."""
    names = namedsql.load(queries.SQL_FILE)
    params = {**PARAMS, "guild_id": "guild_0"}
    with open_snapshot(exported.root) as snap:
        for name, sql in names.items():
            wanted = {k: v for k, v in params.items() if f"${k}" in sql}
            assert snap.execute(sql, wanted).fetchall(), name
