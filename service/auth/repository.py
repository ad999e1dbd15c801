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

from sqlalchemy import TextClause, text

from service.db.database import Database

INSERT_KEY: TextClause = text(
    """
INSERT INTO api_keys (id, name, prefix, key_hash, scopes)
VALUES (:id, :name, :prefix, :key_hash, CAST(:scopes AS text[]))
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at
"""
)

# One round trip per verification: find the live key and note that it was used.
TOUCH_KEY: TextClause = text(
    """
UPDATE api_keys SET last_used_at = now()
WHERE key_hash = :key_hash AND revoked_at IS NULL
RETURNING id, name, prefix, scopes
"""
)

LIST_KEYS: TextClause = text(
    """
SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at
FROM api_keys
ORDER BY created_at, prefix
"""
)

FIND_KEYS: TextClause = text(
    """
SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at
FROM api_keys
WHERE id::text = :ident OR prefix = :ident
"""
)

REVOKE_KEY: TextClause = text(
    """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = :id
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at
"""
)

# Serialises concurrent first starts, so exactly one bootstrap admin key is made.
BOOTSTRAP_LOCK: TextClause = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('reeltrace:bootstrap-admin', 0))"
)
HAS_ADMIN: TextClause = text(
    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE 'admin' = ANY(scopes) AND revoked_at IS NULL) AS present"
)


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
        return KeyRecord.from_row(await self._one(INSERT_KEY, params))

    async def touch(self, key_hash: str) -> KeyRecord | None:
        """The live key with this hash (its last use recorded), or None."""
        row = await self.database.fetch_one(TOUCH_KEY, {"key_hash": key_hash})
        return None if row is None else KeyRecord.from_row(row)

    async def list_all(self) -> list[KeyRecord]:
        return [KeyRecord.from_row(r) for r in await self.database.fetch(LIST_KEYS)]

    async def find(self, ident: str) -> list[KeyRecord]:
        """Keys whose id or display prefix is `ident`."""
        return [KeyRecord.from_row(r) for r in await self.database.fetch(FIND_KEYS, {"ident": ident})]

    async def revoke(self, key_id: uuid.UUID) -> KeyRecord:
        return KeyRecord.from_row(await self._one(REVOKE_KEY, {"id": key_id}))

    async def insert_admin_if_none(
        self, key_id: uuid.UUID, name: str, prefix: str, key_hash: str
    ) -> KeyRecord | None:
        """Insert this admin key unless a live admin key exists; None if one did."""
        async with self.database.transaction() as tx:
            await tx.execute(BOOTSTRAP_LOCK)
            present = await tx.fetch_one(HAS_ADMIN)
            if present is not None and present["present"]:
                return None
            params = {"id": key_id, "name": name, "prefix": prefix, "key_hash": key_hash, "scopes": ["admin"]}
            rows = await tx.fetch(INSERT_KEY, params)
        return KeyRecord.from_row(rows[0])

    async def _one(self, statement: TextClause, params: dict[str, Any]) -> dict[str, Any]:
        rows = await self.database.fetch(statement, params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]
