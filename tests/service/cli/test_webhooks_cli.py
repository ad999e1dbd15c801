"""`reeltrace webhooks redeliver ID`, run as a subprocess against a real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from service.runtime import Runtime
from tests.service.cli.conftest import Cli
from tests.support.callback import CallbackServer
from tests.support.sql import sql_engine
from tests.support.workers import running_worker, submit, wait_for

pytestmark = pytest.mark.slow


async def _outcome(runtime: Runtime, delivery_id: object) -> str:
    async with sql_engine(runtime).connect() as conn:
        result = await conn.execute(
            text("SELECT outcome FROM webhook_deliveries WHERE id = :id"), {"id": delivery_id}
        )
        return str(result.scalar_one())


async def test_redeliver_sends_a_delivered_callback_again(cli: Cli, runtime: Runtime) -> None:
    """After `webhooks redeliver ID`, a worker sends the delivered callback again, same delivery id."""
    with CallbackServer() as receiver:
        [rid] = await submit(runtime, parameters={"callback_url": receiver.url})

        async def count_is(n: int) -> bool:
            return len(receiver.deliveries) == n

        async with running_worker(runtime):
            await wait_for(lambda: count_is(1), 30, "first delivery")
        delivery_id = receiver.deliveries[0].headers["x-reeltrace-delivery"]
        await wait_for(lambda: _is(runtime, delivery_id, "delivered"), 10, "delivered")

        result = cli.run("webhooks", "redeliver", delivery_id)
        assert result.returncode == 0, result.stderr
        assert f"delivery {delivery_id} of request {rid}" in result.stdout
        assert await _outcome(runtime, delivery_id) == "pending"

        async with running_worker(runtime):
            await wait_for(lambda: count_is(2), 30, "second delivery")
    assert [d.headers["x-reeltrace-delivery"] for d in receiver.deliveries] == [delivery_id] * 2


async def _is(runtime: Runtime, delivery_id: str, outcome: str) -> bool:
    return await _outcome(runtime, delivery_id) == outcome


def test_unknown_delivery_is_a_one_line_error(cli: Cli) -> None:
    """An id no delivery has ends the command with a message naming it, and no traceback."""
    missing = uuid.uuid4()
    result = cli.run("webhooks", "redeliver", str(missing))
    assert result.returncode != 0
    assert f"no webhook delivery {missing}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_malformed_id_is_a_one_line_error(cli: Cli) -> None:
    """A delivery id that is not a UUID is refused before anything connects."""
    result = cli.run("webhooks", "redeliver", "12")
    assert result.returncode == 2
    assert "'12' is not a delivery id" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
