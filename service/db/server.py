"""Which PostgreSQL: `DATABASE_URL`, or the embedded server started on demand."""

from __future__ import annotations

from typing import Any

from service.db.embedded import start_embedded
from service.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the embedded server (started if need be)."""
    return resolve_database(settings)[0]


def resolve_database(settings: Settings) -> tuple[str, Any]:
    """The URL, and the embedded server handle (None with DATABASE_URL)."""
    if settings.database_url:
        return settings.database_url, None
    return start_embedded(settings.data_dir)
