"""Budgets at submit, through HTTP on a real PostgreSQL: spent + reserved, 402, release."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
from sqlalchemy import text

from service.cost.repository import BudgetRepository
from service.runtime import Runtime
from tests.service.api.conftest import Headers, body
from tests.service.cost.conftest import AppFactory
from tests.support.sql import sql_engine
from tests.support.workers import run_to_end

ESTIMATE = 0.80  # 8 s of veo-3.1-fast-generate-001 at 720p without audio


async def post(client: httpx.AsyncClient, headers: Headers, **fields: object) -> httpx.Response:
    return await client.post("/api/v1/requests", json=body(**fields), headers=headers)


async def stored(runtime: Runtime) -> int:
    async with sql_engine(runtime).connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM video_requests"))).scalar_one())


async def test_over_guild_budget_is_402_with_spent_limit_and_reset(
    admin: Headers, app_with: AppFactory
) -> None:
    """A submission past the guild's daily budget is a 402 naming spent, limit and reset; nothing is stored."""
    client, runtime = await app_with(budget_guild_daily_usd=1.0)
    assert (await post(client, admin)).status_code == 202
    refused = await post(client, admin, user_id="someone-else")
    assert refused.status_code == 402
    data = refused.json()
    assert data["error"] == "budget_exceeded"
    assert "guild guild-1" in data["detail"]
    assert data["budget"]["scope"] == "guild_daily"
    assert data["budget"]["spent_usd"] == ESTIMATE
    assert data["budget"]["limit_usd"] == 1.0
    assert data["budget"]["resets_at"].endswith("T00:00:00Z")
    assert await stored(runtime) == 1


async def test_user_monthly_budget_counts_across_guilds(admin: Headers, app_with: AppFactory) -> None:
    """A user's budget counts the user's requests in every guild."""
    client, _ = await app_with(budget_user_monthly_usd=1.0)
    assert (await post(client, admin, guild_id="g-a")).status_code == 202
    refused = await post(client, admin, guild_id="g-b")
    assert refused.status_code == 402
    assert refused.json()["budget"]["scope"] == "user_monthly"


async def test_estimate_that_would_cross_the_limit_is_refused(admin: Headers, app_with: AppFactory) -> None:
    """A request whose estimate alone is over the limit is refused even with nothing spent."""
    client, _ = await app_with(budget_guild_daily_usd=0.5)
    refused = await post(client, admin)
    assert refused.status_code == 402
    assert refused.json()["budget"]["spent_usd"] == 0


async def test_guild_override_replaces_the_default(
    admin: Headers, app_with: AppFactory, runtime: Runtime
) -> None:
    """A guild's own limit in guild_budgets wins over REELTRACE_BUDGET_GUILD_DAILY_USD."""
    client, _ = await app_with(budget_guild_daily_usd=100.0)
    await BudgetRepository(runtime.database).set_guild("guild-1", daily=Decimal("1"))
    assert (await post(client, admin)).status_code == 202
    assert (await post(client, admin)).status_code == 402
    assert (await post(client, admin, guild_id="guild-2")).status_code == 202


async def test_repeated_request_id_is_answered_even_at_the_limit(
    admin: Headers, app_with: AppFactory
) -> None:
    """Sending a request's UUID again returns it, without counting against the budget."""
    client, _ = await app_with(budget_guild_daily_usd=1.0)
    rid = str(uuid.uuid4())
    assert (await post(client, admin, request_id=rid)).status_code == 202
    again = await post(client, admin, request_id=rid)
    assert again.status_code == 202
    assert again.json()["created"] is False


async def test_reservation_is_released_when_the_request_fails(admin: Headers, app_with: AppFactory) -> None:
    """A request that failed having billed nothing frees its reservation: the next one fits."""
    client, runtime = await app_with(budget_guild_daily_usd=1.0, sim_quota_error_rate=1.0, max_retries=0)
    first = await post(client, admin)
    assert (await post(client, admin)).status_code == 402  # the first one's reservation
    await run_to_end(runtime, [uuid.UUID(first.json()["id"])])
    assert (await runtime.queries.get_request(first.json()["id"])).status.value == "failed"
    assert (await post(client, admin)).status_code == 202


async def test_reservation_is_released_when_the_request_times_out(
    admin: Headers, app_with: AppFactory
) -> None:
    """A request whose generation timed out (nothing billed) frees its reservation."""
    client, runtime = await app_with(
        budget_guild_daily_usd=1.0, sim_timeout_rate=1.0, generation_timeout_seconds=0.3
    )
    first = await post(client, admin)
    assert (await post(client, admin)).status_code == 402
    await run_to_end(runtime, [uuid.UUID(first.json()["id"])])
    assert (await runtime.queries.get_request(first.json()["id"])).status.value == "timeout"
    assert (await post(client, admin)).status_code == 202


async def test_completed_request_counts_what_it_cost(admin: Headers, app_with: AppFactory) -> None:
    """After a request completes, the budget counts its actual cost in place of its reservation."""
    client, runtime = await app_with(budget_guild_daily_usd=1.7)
    first = await post(client, admin)
    await run_to_end(runtime, [uuid.UUID(first.json()["id"])])
    assert (await post(client, admin)).status_code == 202  # 0.80 spent + 0.80 reserved <= 1.70
    refused = await post(client, admin)
    assert refused.status_code == 402
    assert refused.json()["budget"]["spent_usd"] == 2 * ESTIMATE
