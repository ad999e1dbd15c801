"""Chaos: a dead, a slow (past the webhook timeout) and a flapping callback receiver beside a good one."""

from __future__ import annotations

import pytest

from tests.chaos import ledger
from tests.chaos.conftest import Stage
from tests.chaos.support import REQUESTS, all_settled, receivers, start_serve, submit, wait_until

KINDS = ("good", "dead", "slow", "flapping")


@pytest.mark.slow
async def test_failing_receivers_hold_back_only_their_own_callbacks(stage: Stage) -> None:
    """Every request ends with its video whatever its receiver does; the good and the flapping
    receivers get each of their callbacks once (by delivery id); the ledger holds."""
    with receivers(*KINDS) as hooks:
        serve = start_serve(stage.env, stage.root / "serve.log")
        try:
            urls = [hooks[kind].url for kind in KINDS]
            sent = await submit(serve.url, stage.key, REQUESTS, callbacks=urls)
            ids = list(sent.accepted)
            await wait_until(lambda: all_settled(stage.database_url, ids), 90, "every request settled")

            def delivered(kind: str) -> bool:
                wanted = {
                    str(r) for r, body in sent.accepted.items() if body["callback_url"] == hooks[kind].url
                }
                return wanted <= {r for r, _ in hooks[kind].calls}

            await wait_until(
                lambda: delivered("good") and delivered("flapping"), 60, "good and flapping callbacks"
            )
        finally:
            serve.stop()
        taken = ledger.take(
            "dead, slow and flapping receivers beside a good one",
            database_url=stage.database_url,
            data_dir=stage.data_dir,
            logs=stage.logs(),
            submissions=sent,
            receivers=hooks,
            good=("good", "flapping"),
            key=stage.key,
            out=stage.ledger_log,
        )
    assert taken.accepted == REQUESTS
    assert taken.by_status == {"completed": REQUESTS}
    taken.assert_holds()
