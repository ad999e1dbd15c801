"""The repository of the schema's migration revision (what `/readyz` compares with the head)."""

from __future__ import annotations

from service.db.database import Database
from service.db.namedsql import NamedSql

SCHEMA = NamedSql("service.db", "sql/schema.sql")


class RevisionRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def current(self) -> str | None:
        """The database's migration revision (None when it was never migrated)."""
        present = await self.database.fetch_one(SCHEMA["has_version_table"])
        if present is None or not present["present"]:
            return None
        row = await self.database.fetch_one(SCHEMA["current_revision"])
        return None if row is None or row["revision"] is None else str(row["revision"])
