"""Cost in the snapshot: exported exactly, and absent from files written before it existed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from analytics import queries
from analytics.export import export_snapshot
from analytics.reader import open_snapshot
from tests.analytics.conftest import pg_exec, pg_rows
from tests.analytics.datagen import generate

COSTED = (
    "UPDATE video_requests SET billable_seconds = duration_seconds, cost_usd = duration_seconds * 0.123457,"
    " estimated_cost_usd = duration_seconds * 0.123457, price_version = 'v1+abc' WHERE status = 'completed'"
)


def test_cost_columns_are_exported_exactly(dsn: str, snapshot_root: Path) -> None:
    """The snapshot's cost per guild equals PostgreSQL's to the micro-dollar (decimals, not floats)."""
    generate(dsn, 200, span_days=10, guilds=3)
    pg_exec(dsn, COSTED)
    export_snapshot(dsn, snapshot_root)
    with open_snapshot(snapshot_root) as snap:
        duck = {r["guild_id"]: r["cost_usd"] for r in queries.cost_by(snap, "guild").dicts()}
    pg = dict(
        pg_rows(
            dsn, "SELECT coalesce(guild_id, '-'), coalesce(sum(cost_usd), 0) FROM video_requests GROUP BY 1"
        )
    )
    assert duck == pg
    assert all(isinstance(v, Decimal) for v in duck.values())


def test_files_from_before_the_cost_columns_read_as_null(dsn: str, snapshot_root: Path) -> None:
    """A data file written without the cost columns still opens; its requests cost NULL."""
    generate(dsn, 100, span_days=5, guilds=2)
    pg_exec(dsn, COSTED)
    manifest = export_snapshot(dsn, snapshot_root).manifest
    files = manifest.tables["video_requests"].files()
    old = snapshot_root / files[0].path
    table = pq.read_table(old)
    stripped = table.drop_columns(["cost_usd", "billable_seconds", "estimated_cost_usd", "price_version"])
    old.unlink()  # a hard link may share the inode with another version
    pq.write_table(stripped, old)
    with open_snapshot(snapshot_root) as snap:
        rows = queries.cost_by(snap, "day").dicts()
        nulls = snap.execute("SELECT count(*) FROM video_requests WHERE cost_usd IS NULL").fetchone()
    assert rows
    assert nulls is not None
    assert nulls[0] >= table.num_rows
