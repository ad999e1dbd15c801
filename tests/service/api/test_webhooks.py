"""POST /api/v1/admin/webhooks/deliveries/{id}/redeliver, and deliveries in the request detail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from service.runtime import Runtime
from tests.service.api.conftest import Headers
from tests.support.callback import CallbackServer
from tests.support.workers import running_worker, submit, wait_for


@pytest.fixture
def receiver() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


async def delivered(runtime: Runtime, receiver: CallbackServer, count: int) -> uuid.UUID:
    """Submit a request with a callback and run a worker until the receiver has `count` calls."""
    [rid] = await submit(runtime, parameters={"callback_url": receiver.url})

    async def arrived() -> bool:
        read = await runtime.queries.get_request(rid)
        stage = next(s for s in read.stages if s.name == "notification")
        return len(receiver.deliveries) >= count and stage.status == "completed"

    async with running_worker(runtime):
        await wait_for(arrived, 30, "callback delivered")
    return rid


def redeliver_path(delivery_id: object) -> str:
    return f"/api/v1/admin/webhooks/deliveries/{delivery_id}/redeliver"


async def test_redeliver_sends_the_delivery_again(
    runtime: Runtime, client: httpx.AsyncClient, admin: Headers, receiver: CallbackServer
) -> None:
    """An admin's redeliver makes the delivery pending again; a worker sends it, under the same id."""
    rid = await delivered(runtime, receiver, 1)
    detail = (await client.get(f"/api/v1/monitoring/requests/{rid}", headers=admin)).json()
    [delivery] = detail["deliveries"]
    assert delivery["outcome"] == "delivered"

    answer = await client.post(redeliver_path(delivery["id"]), headers=admin)
    assert answer.status_code == 202
    assert answer.json()["outcome"] == "pending"

    async def sent_again() -> bool:
        return len(receiver.deliveries) == 2

    async with running_worker(runtime):
        await wait_for(sent_again, 30, "callback redelivered")
    assert {d.headers["x-reeltrace-delivery"] for d in receiver.deliveries} == {delivery["id"]}


async def test_request_detail_shows_the_delivery_history(
    runtime: Runtime, client: httpx.AsyncClient, reader: Headers, receiver: CallbackServer
) -> None:
    """The request detail lists each delivery with its attempts: code, latency, outcome."""
    receiver.answers = [502]
    settings = runtime.settings.model_copy(update={"webhook_retry_base_seconds": 0.01})
    runtime.settings = settings
    rid = await delivered(runtime, receiver, 2)
    detail = (await client.get(f"/api/v1/monitoring/requests/{rid}", headers=reader)).json()
    [delivery] = detail["deliveries"]
    assert (delivery["outcome"], delivery["attempts"], delivery["url"]) == ("delivered", 2, receiver.url)
    history = delivery["history"]
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in history] == [
        (1, 502, "pending"),
        (2, 200, "delivered"),
    ]
    assert all(a["latency_ms"] is not None for a in history)


async def test_redeliver_needs_the_admin_scope(
    client: httpx.AsyncClient, reader: Headers, submitter: Headers
) -> None:
    """Read and submit keys get 403; no key gets 401."""
    path = redeliver_path(uuid.uuid4())
    assert (await client.post(path, headers=reader)).status_code == 403
    assert (await client.post(path, headers=submitter)).status_code == 403
    assert (await client.post(path)).status_code == 401


async def test_redeliver_of_an_unknown_delivery_is_404(client: httpx.AsyncClient, admin: Headers) -> None:
    """An id no delivery has answers 404 in the error shape."""
    answer = await client.post(redeliver_path(uuid.uuid4()), headers=admin)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


async def test_redeliver_of_a_malformed_id_is_422(client: httpx.AsyncClient, admin: Headers) -> None:
    """A delivery id that is not a UUID is a 422 naming the path parameter."""
    answer = await client.post(redeliver_path("not-a-uuid"), headers=admin)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "path.delivery_id"
