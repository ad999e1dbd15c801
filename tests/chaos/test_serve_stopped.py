"""Chaos: SIGTERM of `reeltrace serve` with requests in flight, then a restart."""

from __future__ import annotations

import signal

import pytest

from tests.chaos import ledger
from tests.chaos.conftest import Stage
from tests.chaos.support import REQUESTS, all_settled, receivers, rows, start_serve, submit, wait_until


@pytest.mark.slow
async def test_serve_stopped_with_requests_in_flight_then_restarted(stage: Stage) -> None:
    """serve stops cleanly on SIGTERM mid-flight (exit 0, leases handed over); the restarted serve
    finishes every accepted request; the ledger holds."""
    with receivers("good") as hooks:
        serve = start_serve(stage.env, stage.root / "serve-1.log")
        restarted = None
        try:
            sent = await submit(serve.url, stage.key, REQUESTS, callbacks=[hooks["good"].url])
            ids = list(sent.accepted)

            def in_flight() -> bool:
                found = rows(
                    stage.database_url,
                    "SELECT count(*) FROM video_requests WHERE status = 'generating' AND id = ANY(%(ids)s)",
                    {"ids": ids},
                )
                return bool(found[0][0] > 0)

            await wait_until(in_flight, 60, "requests in flight")
            serve.process.send_signal(signal.SIGTERM)
            assert serve.process.wait(60) == 0, serve.tail()
            unfinished = rows(
                stage.database_url,
                "SELECT count(*) FROM video_requests WHERE status IN ('pending', 'generating')",
            )[0][0]
            restarted = start_serve(stage.env, stage.root / "serve-2.log")
            await wait_until(lambda: all_settled(stage.database_url, ids), 90, "every request settled")
            await wait_until(lambda: len({r for r, _ in hooks["good"].calls}) >= len(ids), 30, "callbacks")
        finally:
            serve.stop()
            if restarted is not None:
                restarted.stop()
        taken = ledger.take(
            f"serve stopped with {unfinished} requests unfinished, then restarted",
            database_url=stage.database_url,
            data_dir=stage.data_dir,
            logs=stage.logs(),
            submissions=sent,
            receivers=hooks,
            key=stage.key,
            out=stage.ledger_log,
        )
    assert unfinished > 0
    assert taken.accepted == REQUESTS
    taken.assert_holds()
