"""The only code that reads and writes `api_keys`.

Keys are stored as SHA-256 hashes of the secret; the plaintext never reaches the
database. Statements run on the `Database`, which raises `DatabaseUnavailable` when
the server cannot be reached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.db.database import Database
from service.db.namedsql import NamedSql

KEYS = NamedSql("service.auth", "sql/keys.sql")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            scopes=tuple(row["scopes"]),
            created_at=row.get("created_at"),
            last_used_at=row.get("last_used_at"),
            revoked_at=row.get("revoked_at"),
        )


class ApiKeyRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def insert(
        self, key_id: uuid.UUID, name: str, prefix: str, key_hash: str, scopes: list[str]
    ) -> KeyRecord:
        params = {"id": key_id, "name": name, "prefix": prefix, "key_hash": key_hash, "scopes": scopes}
        return KeyRecord.from_row(await self._one(KEYS["insert_key"], params))

    async def touch(self, key_hash: str) -> KeyRecord | None:
        """The live key with this hash (its last use recorded), or None."""
        row = await self.database.fetch_one(KEYS["touch_key"], {"key_hash": key_hash})
        return None if row is None else KeyRecord.from_row(row)

    async def list_all(self) -> list[KeyRecord]:
        return [KeyRecord.from_row(r) for r in await self.database.fetch(KEYS["list_keys"])]

    async def find(self, ident: str) -> list[KeyRecord]:
        """Keys whose id or display prefix is `ident`."""
        return [KeyRecord.from_row(r) for r in await self.database.fetch(KEYS["find_keys"], {"ident": ident})]

    async def revoke(self, key_id: uuid.UUID) -> KeyRecord:
        return KeyRecord.from_row(await self._one(KEYS["revoke_key"], {"id": key_id}))

    async def insert_admin_if_none(
        self, key_id: uuid.UUID, name: str, prefix: str, key_hash: str
    ) -> KeyRecord | None:
        """Insert this admin key unless a live admin key exists; None if one did."""
        async with self.database.transaction() as tx:
            await tx.execute(KEYS["bootstrap_lock"])
            present = await tx.fetch_one(KEYS["has_admin"])
            if present is not None and present["present"]:
                return None
            params = {"id": key_id, "name": name, "prefix": prefix, "key_hash": key_hash, "scopes": ["admin"]}
            rows = await tx.fetch(KEYS["insert_key"], params)
        return KeyRecord.from_row(rows[0])

    async def _one(self, statement: str, params: dict[str, Any]) -> dict[str, Any]:
        rows = await self.database.fetch(statement, params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]
