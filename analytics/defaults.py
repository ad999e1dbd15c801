"""Defaults shared by the analytics modules and their callers, free of heavy imports.

The CLI reads these when it builds its options, so `reeltrace --help` need not load
DuckDB or pyarrow.
"""

from __future__ import annotations

# Parallel COPY streams out of PostgreSQL for a full export.
DEFAULT_WORKERS = 2
# Request statuses, in lifecycle order, as analytics report them.
STATUSES = ("pending", "generating", "completed", "failed", "timeout")
# Prompts listed per guild-stats bucket.
TOP_PROMPTS = 10
