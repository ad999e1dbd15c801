"""`reeltrace budgets`: per-guild spending limits (directly in PostgreSQL), and what guilds spent."""

from __future__ import annotations

from decimal import Decimal

import typer
from rich.table import Table

from service.cli.common import command_runtime, fail, one_shot_settings, out, run
from service.cost.repository import BudgetRepository, GuildBudget

budgets_app = typer.Typer(help="Per-guild spending limits (USD).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(budgets_app, name="budgets")


def _usd(value: float | None, option: str) -> Decimal | None:
    if value is None:
        return None
    if value < 0:
        raise fail(f"{option} must be 0 or more (USD), got {value:g}")
    return Decimal(str(value))


@budgets_app.command("set")
def set_budget(
    guild: str = typer.Argument(..., help="The guild ID."),
    daily: float | None = typer.Option(None, "--daily", help="USD per UTC day."),
    monthly: float | None = typer.Option(None, "--monthly", help="USD per UTC month."),
) -> None:
    """Set a guild's own daily and/or monthly limit (checked at submit, with spent + reserved)."""
    if daily is None and monthly is None:
        raise fail("give --daily and/or --monthly (USD)")
    daily_usd, monthly_usd = _usd(daily, "--daily"), _usd(monthly, "--monthly")
    settings = one_shot_settings()

    async def body() -> GuildBudget:
        async with command_runtime(settings) as runtime:
            return await BudgetRepository(runtime.database).set_guild(
                guild, daily=daily_usd, monthly=monthly_usd
            )

    budget = run(body)
    out.print(
        f"guild {budget.guild_id}: daily {_limit(budget.daily_usd, settings.budget_guild_daily_usd)},"
        f" monthly {_limit(budget.monthly_usd, settings.budget_guild_monthly_usd)}",
        highlight=False,
    )


@budgets_app.command("unset")
def unset_budget(guild: str = typer.Argument(..., help="The guild ID.")) -> None:
    """Drop a guild's own limits: the REELTRACE_BUDGET_GUILD_* defaults apply again."""
    settings = one_shot_settings()

    async def body() -> bool:
        async with command_runtime(settings) as runtime:
            return await BudgetRepository(runtime.database).unset_guild(guild)

    removed = run(body)
    out.print(f"guild {guild}: {'own limits removed' if removed else 'had no own limits'}", highlight=False)


@budgets_app.command("list")
def list_budgets() -> None:
    """Guilds with their own limits or with spend this month: limits, spent today and this month."""
    settings = one_shot_settings()

    async def body() -> list[GuildBudget]:
        async with command_runtime(settings) as runtime:
            return await BudgetRepository(runtime.database).list_guilds()

    table = Table()
    for column in ("guild", "daily limit", "spent today", "monthly limit", "spent this month"):
        table.add_column(column, overflow="fold", justify="left" if column == "guild" else "right")
    for b in run(body):
        table.add_row(
            b.guild_id,
            _limit(b.daily_usd, settings.budget_guild_daily_usd),
            f"${b.spent_today:.2f}",
            _limit(b.monthly_usd, settings.budget_guild_monthly_usd),
            f"${b.spent_month:.2f}",
        )
    out.print(table)


def _limit(own: Decimal | None, default: float | None) -> str:
    """A guild's limit, its own or the default's (marked), or none."""
    if own is not None:
        return f"${own:.2f}"
    if default is not None:
        return f"${default:.2f} (default)"
    return "none"
