"""Request Status State Machine: enforced by the tracker and again by the database."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from service.errors import InvalidStatusTransition
from service.request_states import TRANSITIONS, RequestStatus
from service.runtime import Runtime
from service.video_request import VideoRequest
from tests.support.logs import json_logs
from tests.support.pg import PgCluster
from tests.support.sql import sql_engine

NEW = VideoRequest(user_id="u-sm", prompt="state machine")
S = RequestStatus

# The README's machine, written out here rather than read from the product:
#     pending -> generating -> completed | failed | timeout
EDGES = frozenset(
    {
        ("pending", "generating"),
        ("generating", "completed"),
        ("generating", "failed"),
        ("generating", "timeout"),
    }
)


def allowed(old: RequestStatus, new: RequestStatus) -> bool:
    """A README edge, or the same status again (a no-op)."""
    return old == new or (old.value, new.value) in EDGES


async def status_of(runtime: Runtime, request_id: uuid.UUID) -> str:
    async with sql_engine(runtime).connect() as conn:
        return str(
            (
                await conn.execute(
                    text("SELECT status FROM video_requests WHERE id = :id"), {"id": request_id}
                )
            ).scalar()
        )


async def at_status(runtime: Runtime, status: RequestStatus) -> uuid.UUID:
    """A request brought to `status` along valid edges."""
    created = await runtime.tracker.create_request(NEW)
    if status != S.PENDING:
        await runtime.tracker.start_request(created.id)
    if status.is_terminal:
        await runtime.tracker.transition(created.id, status)
    return created.id


def test_the_product_table_is_the_readme_machine() -> None:
    """The tracker's transition table holds exactly the README's four edges."""
    assert {(old.value, new.value) for old, new in TRANSITIONS} == EDGES
    assert {s.value for s in S} == {"pending", "generating", "completed", "failed", "timeout"}


@pytest.mark.parametrize(("old", "new"), sorted((S(o), S(n)) for o, n in EDGES))
async def test_valid_transitions_are_applied(
    runtime: Runtime, old: RequestStatus, new: RequestStatus
) -> None:
    """Each edge of the machine is accepted and stored."""
    rid = await at_status(runtime, old)
    result = await runtime.tracker.transition(rid, new)
    assert result is not None
    assert (result.old_status, result.new_status) == (old, new)
    assert await status_of(runtime, rid) == new


INVALID = [(o, n) for o in S for n in S if not allowed(o, n)]


@pytest.mark.parametrize(("old", "new"), INVALID)
async def test_invalid_transitions_are_rejected_without_writing(
    runtime: Runtime, old: RequestStatus, new: RequestStatus
) -> None:
    """Any other change raises "Invalid status transition" and leaves the row and events as they were."""
    rid = await at_status(runtime, old)
    before = [e.id for e in await runtime.queries.events(rid)]
    with pytest.raises(InvalidStatusTransition, match="Invalid status transition"):
        await runtime.tracker.transition(rid, new)
    assert await status_of(runtime, rid) == old
    assert [e.id for e in await runtime.queries.events(rid)] == before


async def test_completed_to_generating_logs_a_warning(runtime: Runtime) -> None:
    """The spec's example: completed -> generating is logged as a warning and refused."""
    rid = await at_status(runtime, S.COMPLETED)
    with json_logs() as lines, pytest.raises(InvalidStatusTransition):
        await runtime.tracker.transition(rid, S.GENERATING)
    [warning] = lines("invalid_status_transition")
    assert warning["level"] == "warning"
    assert (warning["old_status"], warning["new_status"]) == ("completed", "generating")
    assert warning["request_id"] == str(rid)


async def test_same_status_again_refreshes_completed_at(runtime: Runtime) -> None:
    """Setting a terminal status again is a no-op that refreshes completed_at (and no new event)."""
    rid = await at_status(runtime, S.COMPLETED)
    first = (await runtime.queries.get_request(rid)).completed_at
    events = len(await runtime.queries.events(rid))
    again = await runtime.tracker.transition(rid, S.COMPLETED)
    assert again is not None
    assert not again.changed
    assert again.completed_at is not None
    assert first is not None
    assert again.completed_at > first
    assert await status_of(runtime, rid) == "completed"
    assert len(await runtime.queries.events(rid)) == events


async def test_same_nonterminal_status_changes_nothing(runtime: Runtime) -> None:
    """Setting generating again keeps started_at."""
    rid = await at_status(runtime, S.GENERATING)
    started = (await runtime.queries.get_request(rid)).started_at
    await runtime.tracker.transition(rid, S.GENERATING)
    assert (await runtime.queries.get_request(rid)).started_at == started


async def test_database_rejects_invalid_change_from_psql(runtime: Runtime, pg_cluster: PgCluster) -> None:
    """A psql session cannot break the machine: the trigger refuses completed -> pending."""
    rid = await at_status(runtime, S.COMPLETED)
    database = make_url(runtime.database_url).database
    assert database is not None
    result = pg_cluster.psql(database, f"UPDATE video_requests SET status = 'pending' WHERE id = '{rid}'")
    assert result.returncode != 0
    assert "Invalid status transition" in result.stderr
    assert await status_of(runtime, rid) == "completed"


async def test_database_requires_new_requests_to_be_pending(runtime: Runtime) -> None:
    """A request cannot be inserted in any status but pending."""
    created = await runtime.tracker.create_request(NEW)
    async with sql_engine(runtime).connect() as conn:
        with pytest.raises(DBAPIError, match="Invalid status transition"):
            await conn.execute(
                text(
                    "INSERT INTO video_requests (id, correlation_id, user_id, prompt, status)"
                    " VALUES (gen_random_uuid(), 'vvd_0000000000000_0000abcd', 'u', 'p', 'completed')"
                )
            )
    assert await status_of(runtime, created.id) == "pending"


statuses = st.sampled_from(list(S))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(statuses, min_size=1, max_size=8))
async def test_random_sequences_never_leave_the_machine_in_the_tracker(
    runtime: Runtime, sequence: list[RequestStatus]
) -> None:
    """Whatever is asked, the tracker only ever follows edges of the machine."""
    rid = (await runtime.tracker.create_request(NEW)).id
    current = S.PENDING
    for new in sequence:
        if allowed(current, new):
            await runtime.tracker.transition(rid, new)
            current = new
        else:
            with pytest.raises(InvalidStatusTransition):
                await runtime.tracker.transition(rid, new)
        assert await status_of(runtime, rid) == current


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(statuses, min_size=1, max_size=8))
async def test_random_sequences_never_leave_the_machine_in_the_database(
    runtime: Runtime, sequence: list[RequestStatus]
) -> None:
    """Raw UPDATEs, bypassing the tracker, are held to the same machine by the trigger."""
    rid = (await runtime.tracker.create_request(NEW)).id
    current = S.PENDING
    message = ""
    for new in sequence:
        async with sql_engine(runtime).connect() as conn:
            try:
                await conn.execute(
                    text("UPDATE video_requests SET status = CAST(:s AS request_status) WHERE id = :id"),
                    {"s": new.value, "id": rid},
                )
                await conn.commit()
                accepted = True
            except DBAPIError as exc:
                accepted = False
                message = str(exc)
        if not accepted:
            assert "Invalid status transition" in message
        assert accepted == allowed(current, new)
        if accepted:
            current = new
        assert await status_of(runtime, rid) == current
