"""A generation start intended by a run that died before recording it follows REELTRACE_UNCERTAIN_START."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from service.runtime import Runtime
from service.settings import Settings
from telemetry.metrics import get_metrics
from tests.support.workers import events_of, run_to_end, submit


def operations(settings: Settings, rid: uuid.UUID) -> list[str]:
    """The simulated backend's own record of the operations it started for the request."""
    path = Path(settings.data_dir) / "sim" / "operations.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT name FROM operations WHERE request_id = ?", (str(rid),))]


def counted(action: str) -> float:
    sample = get_metrics().registry.get_sample_value(
        "reeltrace_generation_uncertain_starts_total", {"action": action}
    )
    return sample or 0.0


async def died_after_intent(runtime: Runtime) -> uuid.UUID:
    """A request whose run recorded its intent to start the generation, then died before recording one."""
    [rid] = await submit(runtime)
    tracker = runtime.tracker
    await tracker.start_request(rid)
    await tracker.start_stage(rid, "validation")
    await tracker.complete_stage(rid, "validation")
    await tracker.start_stage(rid, "video_generation", attempt=1)
    await tracker.log_event(
        rid,
        "generation_submitting",
        "starting",
        stage="video_generation",
        data={"idempotency_key": f"{rid}:1"},
    )
    return rid


async def test_fail_policy_ends_the_request_without_starting(settings: Settings, database_url: str) -> None:
    """With `fail`, the request fails with a clear error, no generation is started, and it is counted."""
    strict = settings.model_copy(update={"uncertain_start": "fail"})
    runtime = Runtime.build(strict, database_url, source_service="test")
    before = counted("failed")
    try:
        rid = await died_after_intent(runtime)
        read = (await run_to_end(runtime, [rid]))[rid]
    finally:
        await runtime.close()
    assert read.status == "failed"
    assert read.error_stage == "video_generation"
    assert "REELTRACE_UNCERTAIN_START=fail" in (read.error_message or "")
    assert operations(strict, rid) == []
    assert counted("failed") == before + 1


async def test_retry_policy_starts_again_and_counts_it(runtime: Runtime, settings: Settings) -> None:
    """With `retry` (the default), the generation is started again, the request completes, and it is counted."""
    before = counted("retried")
    rid = await died_after_intent(runtime)
    read = (await run_to_end(runtime, [rid]))[rid]
    [event] = await events_of(runtime, rid, "generation_start_uncertain")
    assert read.status == "completed", read.error_message
    assert len(operations(settings, rid)) == 1
    assert event.data == {"idempotency_key": f"{rid}:1", "action": "retried"}
    assert counted("retried") == before + 1


async def test_a_fresh_start_is_not_uncertain(runtime: Runtime) -> None:
    """A run that finds no earlier intent starts normally and counts nothing."""
    before = counted("retried") + counted("failed")
    [rid] = await submit(runtime)
    read = (await run_to_end(runtime, [rid]))[rid]
    assert read.status == "completed"
    assert await events_of(runtime, rid, "generation_start_uncertain") == []
    assert counted("retried") + counted("failed") == before
