"""Publishing breaker states to PostgreSQL, and reading them back across processes.

A process publishes its breakers on every worker heartbeat; the API reads the states
published recently by any process and folds them per dependency (the worst state
wins, counts add up), so an operator sees the dependencies' health whichever
process is calling them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from service.db.database import Database
from service.db.namedsql import NamedSql

BREAKERS = NamedSql("service.pipeline", "sql/breakers.sql")


def _json_states(snapshots: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in s.items()} for s in snapshots]
    )


class BreakerRepository:
    """The only code that reads and writes `circuit_breaker_states`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def publish(self, process_id: str, snapshots: list[dict[str, Any]]) -> None:
        await self.database.fetch(
            BREAKERS["publish"], {"process_id": process_id, "states": _json_states(snapshots)}
        )

    async def current(self, fresh_seconds: float) -> list[dict[str, Any]]:
        """Per dependency, the folded state of every process that published recently."""
        return await self.database.fetch(BREAKERS["current"], {"fresh_seconds": fresh_seconds})
