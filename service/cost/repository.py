"""The SQL of budgets: per-guild overrides and what each guild spent (spent + reserved).

"Spent" follows the create function's definition (migration 0010): an ended request
counts what it cost (its estimate when its cost is unknown), an unfinished one what
it reserves (its estimate, or what it has cost so far if more). Periods are UTC days
and months, by the request's creation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from service.db.database import Database
from service.db.namedsql import NamedSql

BUDGETS = NamedSql("service.cost", "sql/budgets.sql")

SPEND = """
    CASE WHEN v.status IN ('completed', 'failed', 'timeout')
         THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
         ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0)) END
"""


@dataclass(frozen=True, slots=True)
class GuildBudget:
    guild_id: str
    daily_usd: Decimal | None
    monthly_usd: Decimal | None
    spent_today: Decimal = Decimal(0)
    spent_month: Decimal = Decimal(0)
    updated_at: datetime | None = None


class BudgetRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def set_guild(
        self, guild_id: str, *, daily: Decimal | None = None, monthly: Decimal | None = None
    ) -> GuildBudget:
        """Set the given limits of a guild (the other one is left as it was)."""
        params = {
            "guild_id": guild_id,
            "daily": None if daily is None else str(daily),
            "monthly": None if monthly is None else str(monthly),
            "set_daily": daily is not None,
            "set_monthly": monthly is not None,
        }
        row = (await self.database.fetch(BUDGETS["set_guild_budget"], params))[0]
        return GuildBudget(
            row["guild_id"], row["daily_usd"], row["monthly_usd"], updated_at=row["updated_at"]
        )

    async def unset_guild(self, guild_id: str) -> bool:
        """Drop a guild's own limits (the defaults apply again); False if it had none."""
        return bool(await self.database.fetch(BUDGETS["unset_guild_budget"], {"guild_id": guild_id}))

    async def list_guilds(self) -> list[GuildBudget]:
        rows = await self.database.fetch(BUDGETS["list_guild_budgets"], {})
        return [
            GuildBudget(r["guild_id"], r["daily_usd"], r["monthly_usd"], r["spent_today"], r["spent_month"])
            for r in rows
        ]
