"""Chaos: `kill -9` of a worker holding requests mid-generation, with a second worker running."""

from __future__ import annotations

import os
import signal

import pytest

from tests.chaos import ledger
from tests.chaos.conftest import Stage
from tests.chaos.support import (
    REQUESTS,
    all_settled,
    receivers,
    rows,
    start_serve,
    start_worker,
    submit,
    wait_until,
)


@pytest.mark.slow
async def test_worker_killed_mid_generation(stage: Stage) -> None:
    """After kill -9 of a worker with generations in flight, a second worker finishes every
    accepted request; the ledger holds."""
    with receivers("good") as hooks:
        victim = start_worker(stage.env, stage.root / "worker-killed.log")
        serve = start_serve(stage.env, stage.root / "serve.log", worker=False)
        second = None
        try:
            sent = await submit(serve.url, stage.key, REQUESTS, callbacks=[hooks["good"].url])

            def victim_mid_generation() -> bool:
                assert victim.poll() is None
                held = rows(
                    stage.database_url,
                    "SELECT count(*) FROM video_requests WHERE status = 'generating'"
                    " AND operation_name IS NOT NULL AND lease_owner LIKE %(pid)s",
                    {"pid": f"%:{victim.pid}:%"},
                )
                return bool(held[0][0] > 0)

            await wait_until(victim_mid_generation, 60, "the victim holding a generation")
            second = start_worker(stage.env, stage.root / "worker-second.log")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            ids = list(sent.accepted)
            await wait_until(lambda: all_settled(stage.database_url, ids), 90, "every request settled")
            await wait_until(lambda: len(hooks["good"].calls) >= len(ids), 30, "every callback received")
        finally:
            serve.stop()
            for proc in (victim, second):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
        taken = ledger.take(
            "worker killed mid-generation",
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
