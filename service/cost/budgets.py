"""Budget limits: the `REELTRACE_BUDGET_*` defaults, as the create function reads them.

The check itself runs in PostgreSQL (`reeltrace_create_request`, migration 0010),
under the same locks and in the same statement as the rate limit; per-guild
overrides live in `guild_budgets` (see `service.cost.repository`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.settings import Settings

SCOPES = ("user_daily", "user_monthly", "guild_daily", "guild_monthly")


@dataclass(frozen=True, slots=True)
class BudgetDefaults:
    """Default limits in USD; None means no limit of that kind."""

    user_daily: float | None = None
    user_monthly: float | None = None
    guild_daily: float | None = None
    guild_monthly: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetDefaults:
        return cls(
            user_daily=settings.budget_user_daily_usd,
            user_monthly=settings.budget_user_monthly_usd,
            guild_daily=settings.budget_guild_daily_usd,
            guild_monthly=settings.budget_guild_monthly_usd,
        )

    def as_json(self) -> dict[str, Any]:
        return {scope: getattr(self, scope) for scope in SCOPES}


def describe(scope: str) -> str:
    """`guild_daily` -> `guild daily budget`."""
    who, period = scope.split("_", 1)
    return f"{who} {period} budget"
