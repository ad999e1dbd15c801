"""The simulated Veo backend: Veo-format operations persisted across restarts, injected outcomes."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from service.backends.base import (
    GenerationRequest,
    InvalidBackendRequest,
    OperationState,
    QuotaExceeded,
)
from service.backends.local_storage import LocalStorage
from service.backends.simulated_veo import SimulatedGeneration
from service.backends.simulation_profile import SimulationProfile
from tests.support.backends import generation_request

MODEL = "veo-3.1-fast-generate-001"
OPERATION = re.compile(
    rf"^projects/sim/locations/local/publishers/google/models/{re.escape(MODEL)}/operations/[0-9a-f-]{{36}}$"
)

Factory = Callable[..., SimulatedGeneration]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", "http://media.test:8000/")


@pytest.fixture
async def make(tmp_path: Path, storage: LocalStorage) -> AsyncIterator[Factory]:
    """Builds simulated backends over one state file, as successive worker processes would."""
    made: list[SimulatedGeneration] = []

    def factory(**profile: float | int | None) -> SimulatedGeneration:
        backend = SimulatedGeneration(
            tmp_path / "sim" / "operations.sqlite3", storage, SimulationProfile(**profile), model=MODEL
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


def request(storage: LocalStorage, key: str | None = None, **fields: object) -> GenerationRequest:
    rid = uuid.uuid4()
    values: dict[str, object] = {
        "request_id": rid,
        "correlation_id": "vvd_1_00000000",
        "prompt": "a red fox",
        "duration_seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "generate_audio": False,
        "output_prefix": storage.prefix_for(rid),
        "idempotency_key": key if key is not None else f"{rid}:1",
        **fields,
    }
    return generation_request(**values)


async def test_operation_names_have_the_veo_format(make: Factory, storage: LocalStorage) -> None:
    """start returns a full Veo-style long-running operation name."""
    name = await make().start(request(storage))
    assert OPERATION.match(name), name


async def test_running_until_the_latency_has_passed(make: Factory, storage: LocalStorage) -> None:
    """An operation is running until its latency has passed, then succeeds with its videos written."""
    backend = make(latency_seconds=0.3)
    req = request(storage, sample_count=2)
    name = await backend.start(req)
    assert (await backend.poll(name)).state == OperationState.RUNNING
    await asyncio.sleep(0.35)
    status = await backend.poll(name)
    assert status.state == OperationState.SUCCEEDED
    assert [v.uri for v in status.videos] == [
        f"{req.output_prefix}sample_0.mp4",
        f"{req.output_prefix}sample_1.mp4",
    ]
    listed = await storage.list(req.output_prefix)
    assert [(o.uri, o.content_type) for o in listed] == [(v.uri, "video/mp4") for v in status.videos]
    assert storage.path_of(status.videos[0].uri).read_bytes()[4:8] == b"ftyp"


async def test_polling_survives_a_restart(make: Factory, storage: LocalStorage) -> None:
    """A new backend instance (a restarted worker) polls an operation another instance started."""
    first = make(latency_seconds=0.2)
    name = await first.start(request(storage))
    await first.aclose()
    await asyncio.sleep(0.25)
    restarted = make()
    assert (await restarted.poll(name)).state == OperationState.SUCCEEDED


async def test_a_repeated_start_key_returns_the_same_operation(make: Factory, storage: LocalStorage) -> None:
    """Starting twice with one idempotency key (a crash before the name was stored) starts one operation."""
    req = request(storage)
    first = await make().start(req)
    again = await make().start(req)
    assert again == first
    assert make().operations_for(req.request_id) == [first]
    retry = await make().start(request(storage, key=f"{req.request_id}:2", request_id=req.request_id))
    assert retry != first
    assert make().operations_for(req.request_id) == [first, retry]


async def test_jobs_are_kept_in_the_state_file(make: Factory, storage: LocalStorage, tmp_path: Path) -> None:
    """Jobs live in <data dir>/sim/operations.sqlite3, with their request id and key."""
    req = request(storage)
    name = await make().start(req)
    with sqlite3.connect(tmp_path / "sim" / "operations.sqlite3") as db:
        rows = db.execute("SELECT name, request_id, idempotency_key FROM operations").fetchall()
    assert rows == [(name, str(req.request_id), req.idempotency_key)]


async def test_failure_rate_fails_the_operation(make: Factory, storage: LocalStorage) -> None:
    """With failure rate 1 the operation ends in an error (code 13, not retryable)."""
    backend = make(failure_rate=1.0)
    status = await backend.poll(await backend.start(request(storage)))
    assert status.state == OperationState.FAILED
    assert status.error_code == 13
    assert status.retryable is False
    assert "simulated generation failure" in (status.error_message or "")


async def test_filter_rate_filters_the_operation(make: Factory, storage: LocalStorage) -> None:
    """With filter rate 1 the operation ends filtered, with a reason and the filtered count."""
    backend = make(filter_rate=1.0)
    status = await backend.poll(await backend.start(request(storage, sample_count=2)))
    assert status.state == OperationState.FILTERED
    assert status.filtered_count == 2
    assert status.filtered_reasons


async def test_timeout_rate_never_finishes(make: Factory, storage: LocalStorage) -> None:
    """With timeout rate 1 the operation stays running past its latency."""
    backend = make(timeout_rate=1.0)
    name = await backend.start(request(storage))
    await asyncio.sleep(0.01)
    assert (await backend.poll(name)).state == OperationState.RUNNING


async def test_quota_error_rate_refuses_the_start(make: Factory, storage: LocalStorage) -> None:
    """With quota-error rate 1 the start call itself answers 429, and no operation exists."""
    backend = make(quota_error_rate=1.0)
    req = request(storage)
    with pytest.raises(QuotaExceeded) as refused:
        await backend.start(req)
    assert refused.value.code == 429
    assert refused.value.retryable is True
    assert backend.operations_for(req.request_id) == []


async def test_seeded_outcomes_are_reproducible(tmp_path: Path, storage: LocalStorage) -> None:
    """The same seed gives the same outcome per start key on any machine; another seed gives others."""
    keys = [f"00000000-0000-0000-0000-{i:012d}:1" for i in range(40)]

    async def outcomes(seed: int, state: str) -> list[OperationState]:
        backend = SimulatedGeneration(
            tmp_path / state / "operations.sqlite3", storage, SimulationProfile(failure_rate=0.5, seed=seed)
        )
        try:
            return [(await backend.poll(await backend.start(request(storage, key=k)))).state for k in keys]
        finally:
            await backend.aclose()

    first = await outcomes(7, "one")
    assert await outcomes(7, "two") == first
    assert set(first) == {OperationState.FAILED, OperationState.SUCCEEDED}
    assert await outcomes(8, "three") != first


async def test_unknown_operation_is_refused(make: Factory) -> None:
    """Polling a name the backend never issued is an invalid request (404)."""
    with pytest.raises(InvalidBackendRequest) as refused:
        await make().poll("projects/sim/locations/local/publishers/google/models/x/operations/nope")
    assert refused.value.code == 404


async def test_empty_prompt_is_refused(make: Factory, storage: LocalStorage) -> None:
    """An empty prompt is refused before any operation starts."""
    with pytest.raises(InvalidBackendRequest):
        await make().start(request(storage, prompt="  "))
