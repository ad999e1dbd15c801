"""Chaos: PostgreSQL stopped (immediate mode) for longer than the lease under steady submissions."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos import ledger
from tests.chaos.conftest import Stage
from tests.chaos.support import (
    LEASE_SECONDS,
    OUTAGE_SECONDS,
    REQUESTS,
    Submissions,
    all_settled,
    receivers,
    start_serve,
    submit,
    wait_until,
)


@pytest.mark.slow
async def test_postgres_outage_longer_than_the_lease(stage: Stage) -> None:
    """Submissions go on through an outage longer than the lease; once PostgreSQL is back every
    accepted request is in it, terminal, and the ledger holds."""
    assert OUTAGE_SECONDS > LEASE_SECONDS
    with receivers("good") as hooks:
        serve = start_serve(stage.env, stage.root / "serve.log")
        sent = Submissions()
        try:
            # Steady load across the whole outage: before, during and after it.
            rate = max(REQUESTS / (OUTAGE_SECONDS + 6), 1.0)
            load = asyncio.create_task(
                submit(
                    serve.url, stage.key, REQUESTS, callbacks=[hooks["good"].url], per_second=rate, into=sent
                )
            )
            await asyncio.sleep(2)
            await asyncio.to_thread(stage.cluster.stop, "immediate")
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(stage.cluster.start)
            await load
            ids = list(sent.accepted)
            await wait_until(lambda: all_settled(stage.database_url, ids), 120, "every request settled")
            await wait_until(lambda: len({r for r, _ in hooks["good"].calls}) >= len(ids), 30, "callbacks")
        finally:
            serve.stop()
        taken = ledger.take(
            "PostgreSQL stopped longer than the lease",
            database_url=stage.database_url,
            data_dir=stage.data_dir,
            logs=stage.logs(),
            submissions=sent,
            receivers=hooks,
            key=stage.key,
            out=stage.ledger_log,
        )
    assert taken.accepted == REQUESTS
    taken.assert_holds()
