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

from sqlalchemy import TextClause, text

from service.db.database import Database

SPEND = """
    CASE WHEN v.status IN ('completed', 'failed', 'timeout')
         THEN coalesce(v.cost_usd, v.estimated_cost_usd, 0)
         ELSE greatest(coalesce(v.cost_usd, 0), coalesce(v.estimated_cost_usd, 0)) END
"""

SET_GUILD_BUDGET: TextClause = text(
    """
INSERT INTO guild_budgets AS b (guild_id, daily_usd, monthly_usd, updated_at)
VALUES (:guild_id, CAST(:daily AS numeric), CAST(:monthly AS numeric), now())
ON CONFLICT (guild_id) DO UPDATE SET
    daily_usd = CASE WHEN :set_daily THEN EXCLUDED.daily_usd ELSE b.daily_usd END,
    monthly_usd = CASE WHEN :set_monthly THEN EXCLUDED.monthly_usd ELSE b.monthly_usd END,
    updated_at = now()
RETURNING guild_id, daily_usd, monthly_usd, updated_at
"""
)

UNSET_GUILD_BUDGET: TextClause = text(
    "DELETE FROM guild_budgets WHERE guild_id = :guild_id RETURNING guild_id"
)

# Every guild with an override or with requests this month, with both periods' spend.
LIST_GUILD_BUDGETS: TextClause = text(
    f"""
WITH bounds AS (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start,
           date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start
), spend AS (
    SELECT v.guild_id,
           coalesce(sum({SPEND}) FILTER (WHERE v.created_at >= bounds.day_start), 0) AS spent_today,
           coalesce(sum({SPEND}), 0) AS spent_month
    FROM video_requests v, bounds
    WHERE v.guild_id IS NOT NULL AND v.created_at >= bounds.month_start
    GROUP BY v.guild_id
)
SELECT coalesce(b.guild_id, s.guild_id) AS guild_id, b.daily_usd, b.monthly_usd,
       coalesce(s.spent_today, 0) AS spent_today, coalesce(s.spent_month, 0) AS spent_month
FROM guild_budgets b
FULL JOIN spend s ON s.guild_id = b.guild_id
ORDER BY spent_month DESC, guild_id
"""
)


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
        row = (await self.database.fetch(SET_GUILD_BUDGET, params))[0]
        return GuildBudget(
            row["guild_id"], row["daily_usd"], row["monthly_usd"], updated_at=row["updated_at"]
        )

    async def unset_guild(self, guild_id: str) -> bool:
        """Drop a guild's own limits (the defaults apply again); False if it had none."""
        return bool(await self.database.fetch(UNSET_GUILD_BUDGET, {"guild_id": guild_id}))

    async def list_guilds(self) -> list[GuildBudget]:
        rows = await self.database.fetch(LIST_GUILD_BUDGETS, {})
        return [
            GuildBudget(r["guild_id"], r["daily_usd"], r["monthly_usd"], r["spent_today"], r["spent_month"])
            for r in rows
        ]
