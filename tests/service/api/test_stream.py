"""GET /api/v1/monitoring/stream against real uvicorn servers on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from service.runtime import Runtime
from service.settings import Settings
from tests.service.api.conftest import Headers, body
from tests.service.api.live import LiveServer, live_server
from tests.service.api.sse import open_stream
from tests.support.sql import sql_engine

pytestmark = pytest.mark.slow


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings.model_copy(update={"stream_ping_seconds": 0.3})) as server:
        yield server


async def submit(server: LiveServer, headers: Headers, **overrides: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post("/api/v1/requests", json=body(**overrides), headers=headers)
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


async def advance(runtime: Runtime, request_id: uuid.UUID) -> None:
    """Start the request and run its first stage."""
    await runtime.tracker.start_request(request_id)
    await runtime.tracker.start_stage(request_id, "validation")
    await runtime.tracker.complete_stage(request_id, "validation")


async def finish(runtime: Runtime, request_id: uuid.UUID) -> None:
    t = runtime.tracker
    for stage in ("video_generation", "video_processing"):
        await t.start_stage(request_id, stage)
        await t.complete_stage(request_id, stage)
    await t.complete_request(request_id, ["https://cdn.example.com/v.mp4"])


async def test_request_stream_follows_a_request_to_its_end(
    live: LiveServer, runtime: Runtime, admin: Headers
) -> None:
    """A request stream sends every change in log order, each with an id, and ends after the terminal event."""
    accepted = await submit(live, admin)
    rid = uuid.UUID(accepted["id"])
    async with open_stream(live.url, admin, request_id=accepted["correlation_id"]) as stream:
        created = await stream.next_data()
        assert (created["event_type"], created["status"]) == ("request_created", "pending")
        await advance(runtime, rid)
        await finish(runtime, rid)
        # Written after the terminal event (as the notification stage does): not on this stream.
        await runtime.tracker.log_event(rid, "notification_sent", "user notified")
        rest = await stream.events_until_end()
    types = [e["event_type"] for e in rest]
    assert types[0] == "request_started"
    assert types[-1] == "request_completed"
    assert "notification_sent" not in types
    ids = [created["id"], *(e["id"] for e in rest)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert rest[-1]["status"] == "completed"
    assert rest[-1]["progress_percentage"] == 100
    stage_done = next(e for e in rest if e["event_type"] == "stage_completed")
    assert stage_done["stage_name"] == "validation"
    assert stage_done["request_id"] == str(rid)


async def test_resume_with_last_event_id_sends_what_was_missed(
    live: LiveServer, runtime: Runtime, admin: Headers
) -> None:
    """Reconnecting with Last-Event-ID delivers exactly the events after it, from the log."""
    accepted = await submit(live, admin)
    rid = uuid.UUID(accepted["id"])
    async with open_stream(live.url, admin, request_id=accepted["id"]) as stream:
        first = await stream.next_data()
    await advance(runtime, rid)  # happens while no one listens
    missed = [e.id for e in await runtime.queries.events(rid, after_id=first["id"])]
    async with open_stream(
        live.url, admin, request_id=accepted["id"], last_event_id_header=first["id"]
    ) as stream:
        replayed = [(await stream.next_data())["id"] for _ in missed]
        await finish(runtime, rid)
        tail = await stream.events_until_end()
    assert replayed == missed
    assert tail[0]["id"] > missed[-1]
    assert tail[-1]["event_type"] == "request_completed"


async def test_resume_by_query_parameter(live: LiveServer, runtime: Runtime, admin: Headers) -> None:
    """`last_event_id` in the query resumes like the header, for clients that cannot set one."""
    accepted = await submit(live, admin)
    rid = uuid.UUID(accepted["id"])
    await advance(runtime, rid)
    events = await runtime.queries.events(rid)
    async with open_stream(live.url, admin, request_id=accepted["id"], last_event_id=events[1].id) as stream:
        got = await stream.next_data()
    assert got["id"] == events[2].id


async def test_finished_stream_answers_204(live: LiveServer, runtime: Runtime, admin: Headers) -> None:
    """Asking for a finished request's stream after its terminal event answers 204 (EventSource stops)."""
    accepted = await submit(live, admin)
    rid = uuid.UUID(accepted["id"])
    await advance(runtime, rid)
    await finish(runtime, rid)
    terminal = (await runtime.queries.events(rid))[-1]
    assert terminal.event_type == "request_completed"
    async with httpx.AsyncClient(base_url=live.url) as c:
        r = await c.get(
            "/api/v1/monitoring/stream",
            params={"request_id": accepted["id"]},
            headers={**admin, "Last-Event-ID": str(terminal.id)},
        )
        assert r.status_code == 204
        # Without Last-Event-ID a finished request's whole history is replayed, then the stream ends.
        full = await c.get("/api/v1/monitoring/stream", params={"request_id": accepted["id"]}, headers=admin)
    assert full.status_code == 200
    assert full.text.count("\nid: ") + full.text.startswith("id: ") >= 1
    assert "request_completed" in full.text


async def test_user_stream_sees_only_that_user(live: LiveServer, runtime: Runtime, admin: Headers) -> None:
    """A user stream carries that user's requests and not others'."""
    async with open_stream(live.url, admin, user_id="watched") as stream:
        other = await submit(live, admin, user_id="not-watched")
        mine = await submit(live, admin, user_id="watched")
        got = await stream.next_data()
        await advance(runtime, uuid.UUID(other["id"]))
        await advance(runtime, uuid.UUID(mine["id"]))
        following = [await stream.next_data() for _ in range(3)]
    assert got["request_id"] == mine["id"]
    assert {e["request_id"] for e in following} == {mine["id"]}
    assert all(e["user_id"] == "watched" for e in [got, *following])


async def test_change_reaches_another_replica(settings: Settings, runtime: Runtime, admin: Headers) -> None:
    """Each request submitted through one API replica is streamed by another, in submission order."""
    with live_server(settings) as writer, live_server(settings) as reader:
        async with open_stream(reader.url, admin) as stream:
            await submit(writer, admin, user_id="warm-up")
            await stream.next_data(within=10)  # the listener is connected from here on
            submitted, streamed = [], []
            for i in range(8):
                accepted = await submit(writer, admin, user_id=f"replica-{i}")
                submitted.append(accepted["id"])
                got = await stream.next_data(within=10)
                streamed.append(got["request_id"])
    assert streamed == submitted


async def test_keepalive_pings(live: LiveServer, admin: Headers) -> None:
    """An idle stream sends keep-alive comment lines."""
    async with open_stream(live.url, admin, user_id="idle") as stream:
        with pytest.raises(TimeoutError):
            await stream.next_event(within=1.0)
    assert any(c.startswith(": ping") for c in stream.comments)


async def test_stream_survives_losing_the_listener_connection(
    live: LiveServer, runtime: Runtime, admin: Headers
) -> None:
    """When the LISTEN connection is cut, the hub reconnects and the stream misses nothing."""
    accepted = await submit(live, admin)
    rid = uuid.UUID(accepted["id"])
    async with open_stream(live.url, admin, request_id=accepted["id"]) as stream:
        await stream.next_data()
        # The first event can come from the log before the hub's LISTEN connection is
        # up (it connects in the background): cut that connection once it exists.
        killed: list[bool] = []
        async with asyncio.timeout(10):
            while not killed:
                async with sql_engine(runtime).connect() as conn:
                    result = await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'reeltrace-stream' AND datname = current_database()"
                        )
                    )
                    killed = list(result.scalars().all())
                if not killed:
                    await asyncio.sleep(0.05)
        assert killed == [True]
        await advance(runtime, rid)  # written while the listener is down or reconnecting
        got = [(await stream.next_data(within=10))["event_type"] for _ in range(3)]
    assert got == ["request_started", "stage_started", "stage_completed"]


async def test_stream_errors(live: LiveServer, admin: Headers, reader: Headers) -> None:
    """An unknown request is 404 and a malformed Last-Event-ID is 422, both before any streaming."""
    async with httpx.AsyncClient(base_url=live.url) as c:
        r = await c.get("/api/v1/monitoring/stream", params={"request_id": str(uuid.uuid4())}, headers=reader)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await c.get("/api/v1/monitoring/stream", headers={**reader, "Last-Event-ID": "yesterday"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["field"] == "header.Last-Event-ID"


async def test_a_resume_point_ahead_of_the_log_is_refused(live: LiveServer, admin: Headers) -> None:
    """An id past the newest event (never sent by this server) is a 422, not a stream that would
    skip every event up to it and never end."""
    created = await submit(live, admin)
    ahead = "9" * 15
    async with httpx.AsyncClient(base_url=live.url) as c:
        r = await c.get(
            "/api/v1/monitoring/stream",
            params={"request_id": created["id"]},
            headers={**admin, "Last-Event-ID": ahead},
        )
        assert r.status_code == 422
        assert r.json()["detail"][0]["field"] == "header.Last-Event-ID"
        assert "ahead of the event log" in r.json()["detail"][0]["message"]
        r = await c.get("/api/v1/monitoring/stream", params={"last_event_id": ahead}, headers=admin)
        assert (r.status_code, r.json()["detail"][0]["field"]) == (422, "query.last_event_id")


async def test_parallel_streams_share_one_listener(live: LiveServer, admin: Headers) -> None:
    """Many open streams in one process use a single LISTEN connection."""
    async with (
        open_stream(live.url, admin, user_id="a") as s1,
        open_stream(live.url, admin, user_id="b") as s2,
        open_stream(live.url, admin) as s3,
    ):
        await submit(live, admin, user_id="a")
        await submit(live, admin, user_id="b")
        assert (await s1.next_data())["user_id"] == "a"
        assert (await s2.next_data())["user_id"] == "b"
        assert (await s3.next_data())["user_id"] in {"a", "b"}
        assert live.app.state.parts.hub.subscriber_count == 3
