"""The delivery SQL on a real PostgreSQL: per-host claims, fenced records, idempotent enqueues."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.runtime import Runtime
from service.webhooks.repository import AttemptRecord, DeliveryRepository
from tests.service.webhooks.conftest import delivery_rows
from tests.support.workers import submit


def repository(runtime: Runtime) -> DeliveryRepository:
    return DeliveryRepository(runtime.database, source_service="test", source_host="here")


async def enqueue(
    repo: DeliveryRepository, rid: uuid.UUID, host: str, event: str = "request.completed"
) -> None:
    await repo.enqueue(uuid.uuid4(), rid, event, f"http://{host}/hook", host, {"id": str(rid)}, 3600)


def delivered_record() -> AttemptRecord:
    return AttemptRecord(
        outcome="delivered", at=datetime.now(UTC), status_code=200, latency_ms=3.0, error=None,
        next_attempt_at=None, stage_status="completed", output={"sent": True}, event_type="notification_sent",
        severity="info", message="callback answered 200", data={"attempt": 1},
    )  # fmt: skip


async def test_a_busy_host_gets_no_more_than_its_share(runtime: Runtime) -> None:
    """With 20 due deliveries to one host and 1 to another, a claim takes 8 of the first and the other's;
    while those 8 are in flight, no further claim takes that host's rows."""
    repo = repository(runtime)
    for rid in await submit(runtime, 20):
        await enqueue(repo, rid, "dead.example")
    [other] = await submit(runtime)
    await enqueue(repo, other, "good.example")

    claimed = await repo.claim_due(100, 8, 60)
    hosts = sorted(d.host for d in claimed)
    assert hosts == ["dead.example"] * 8 + ["good.example"]
    assert await repo.claim_due(100, 8, 60) == []


async def test_a_claim_is_taken_once(runtime: Runtime) -> None:
    """A claimed delivery is claimed by nobody else (by id or by the sweep) until its claim expires."""
    repo = repository(runtime)
    [rid] = await submit(runtime)
    await enqueue(repo, rid, "h.example")
    [claimed] = await repo.claim_due(10, 8, 60)
    assert await repo.claim_one(claimed.id, 60) is None
    assert await repo.claim_due(10, 8, 60) == []


async def test_an_expired_claim_is_claimed_again(runtime: Runtime) -> None:
    """A claim whose holder died (its time passed) is free for the next sweep."""
    repo = repository(runtime)
    [rid] = await submit(runtime)
    await enqueue(repo, rid, "h.example")
    [first] = await repo.claim_due(10, 8, 0)
    [second] = await repo.claim_due(10, 8, 60)
    assert second.id == first.id
    assert second.token != first.token


async def test_a_lost_claim_records_nothing(runtime: Runtime) -> None:
    """An attempt recorded under a claim that was taken over writes nothing (the new holder's stands)."""
    repo = repository(runtime)
    [rid] = await submit(runtime)
    await enqueue(repo, rid, "h.example")
    [stale] = await repo.claim_due(10, 8, 0)
    [current] = await repo.claim_due(10, 8, 60)
    assert await repo.record(stale, delivered_record()) is None
    [row] = await delivery_rows(runtime, rid)
    assert (row["outcome"], row["attempts"]) == ("pending", 0)
    recorded = await repo.record(current, delivered_record())
    assert recorded is not None
    assert (recorded.outcome, recorded.attempts) == ("delivered", 1)


async def test_enqueue_twice_keeps_one_delivery(runtime: Runtime) -> None:
    """Enqueueing a request's callback again (a resumed run) returns the existing delivery unchanged."""
    repo = repository(runtime)
    [rid] = await submit(runtime)
    first = await repo.enqueue(uuid.uuid4(), rid, "request.completed", "http://a/h", "a", {"n": 1}, 3600)
    again = await repo.enqueue(uuid.uuid4(), rid, "request.completed", "http://a/h", "a", {"n": 2}, 3600)
    assert again.id == first.id
    assert again.payload == {"n": 1}
    assert len(await delivery_rows(runtime, rid)) == 1
