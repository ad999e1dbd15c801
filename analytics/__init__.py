"""Analytics: PostgreSQL -> Parquet snapshots, and DuckDB queries over them.

- `analytics.export.export_snapshot(dsn, root)` writes a new snapshot version
  (incremental, atomic, partitioned by day) of requests, stages and events.
- `analytics.reader.open_snapshot(root)` opens the latest published version in DuckDB.
- `analytics.queries` holds the analytics (guild stats, latency percentiles, stages,
  retry economics, user activity), whose SQL lives in `analytics/sql/analytics.sql`.

This package takes a libpq DSN and paths from its callers and never imports the
service; PostgreSQL stays the authoritative store.
"""
