"""Reading a whole table from PostgreSQL and from a snapshot, in the same shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics.reader import open_snapshot
from analytics.tables import BY_NAME
from tests.analytics.conftest import pg_rows

# The PostgreSQL expression for each snapshot column that is not a plain column. A
# stage's day comes from its request's own created_at, which also checks the copy of
# it that each stage row carries (the column the export reads).
_PG_EXPR = {
    ("video_requests", "id"): "id::text",
    ("video_requests", "status"): "status::text",
    ("request_stages", "request_id"): "s.request_id::text",
    ("request_stages", "status"): "s.status::text",
    ("request_stages", "request_created_at"): "r.created_at",
    ("request_events", "request_id"): "request_id::text",
    ("request_events", "severity"): "severity::text",
    ("request_events", "data"): "data::text",
}
_PG_FROM = {
    "video_requests": "video_requests",
    "request_stages": "request_stages s JOIN video_requests r ON r.id = s.request_id",
    "request_events": "request_events",
}


def pg_table(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table` in PostgreSQL, as the snapshot stores it, ordered by key."""
    spec = BY_NAME[table]
    prefix = "s." if table == "request_stages" else ""
    exprs = [_PG_EXPR.get((table, name), f"{prefix}{name}") for name in spec.names]
    return pg_rows(dsn, f"SELECT {', '.join(exprs)} FROM {_PG_FROM[table]} ORDER BY {prefix}{spec.key}")


def snapshot_table(root: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table` in the latest snapshot, ordered by key."""
    spec = BY_NAME[table]
    with open_snapshot(root) as snap:
        return [
            tuple(r)
            for r in snap.execute(
                f"SELECT {', '.join(spec.names)} FROM {table} ORDER BY {spec.key}"
            ).fetchall()
        ]


def snapshot_keys(root: Path, table: str) -> set[Any]:
    with open_snapshot(root) as snap:
        return {r[0] for r in snap.execute(f"SELECT {BY_NAME[table].key} FROM {table}").fetchall()}
