"""`reeltrace budgets set|unset|list`, and `submit` refused by a budget, as a user runs them."""

from __future__ import annotations

import pytest

from service.auth.keys import create_key
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.live import live_server
from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


def test_set_then_list_shows_the_guild_limit(cli: Cli) -> None:
    """`budgets set G --daily 20` stores the limit; `budgets list` shows it beside the spend."""
    result = cli.run("budgets", "set", "guild-9", "--daily", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "guild guild-9: daily $20.00, monthly none"
    listed = cli.run("budgets", "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if "guild-9" in line]
    assert "$20.00" in row
    assert "$0.00" in row


def test_set_keeps_the_limit_it_was_not_given(cli: Cli) -> None:
    """Setting only --monthly leaves an earlier --daily in place."""
    cli.run("budgets", "set", "guild-9", "--daily", "20")
    result = cli.run("budgets", "set", "guild-9", "--monthly", "300")
    assert result.stdout.strip() == "guild guild-9: daily $20.00, monthly $300.00"


def test_unset_falls_back_to_the_default(cli: Cli) -> None:
    """`budgets unset` drops the guild's limits; `list` then shows the default, marked."""
    cli.run("budgets", "set", "guild-9", "--daily", "20")
    assert cli.run("budgets", "unset", "guild-9").stdout.strip() == "guild guild-9: own limits removed"
    assert "guild-9" not in cli.run("budgets", "list", REELTRACE_BUDGET_GUILD_DAILY_USD="5").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--daily", "-1"), "--daily must be 0 or more"),
        ((), "give --daily and/or --monthly"),
    ],
)
def test_bad_limit_is_a_one_line_error(cli: Cli, args: tuple[str, ...], message: str) -> None:
    """A negative or missing limit ends with one line naming the option, no traceback."""
    result = cli.run("budgets", "set", "guild-9", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_submit_over_budget_says_so_in_one_line(cli: Cli, settings: Settings, runtime: Runtime) -> None:
    """`submit` refused by a budget prints one line: 402, whose budget, spent, limit and reset."""
    key = (await create_key(ApiKeyRepository(runtime.database), "cli-test", ["admin"])).key
    with live_server(settings.model_copy(update={"budget_guild_daily_usd": 0.5})) as api:
        result = cli.run(
            "submit", "a fox", "--user-id", "u1", "--guild-id", "g1",
            REELTRACE_API_URL=api.url, REELTRACE_API_KEY=key,
        )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "402 budget_exceeded" in lines[0]
    assert "guild g1: guild daily budget of $0.50 reached" in lines[0]
    assert "resets at" in lines[0]
