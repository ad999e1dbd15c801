"""The simulated backends: Veo-format operations persisted across restarts, injected outcomes, local storage."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from service.backends.base import (
    GenerationRequest,
    InvalidBackendRequest,
    OperationState,
    QuotaExceeded,
    TransientBackendError,
)
from service.backends.local_storage import LocalStorage
from service.backends.simulated_content import SimulatedRetrieval, SimulatedScript
from service.backends.simulated_generation import SimulatedGeneration
from service.backends.simulation import SimulationProfile
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


async def test_simulated_content_steps() -> None:
    """Retrieval returns k passages about the query and the script names the topic; both are deterministic."""
    profile = SimulationProfile()
    chunks = await SimulatedRetrieval(profile).retrieve("tides and the moon", 3)
    assert len(chunks) == 3
    assert all("tides and the moon" in c.text for c in chunks)
    assert all(c.source == "simulated" for c in chunks)
    assert await SimulatedRetrieval(profile).retrieve("tides and the moon", 3) == chunks
    texts = [c.text for c in chunks]
    script = await SimulatedScript(profile).write_script("tides", "predict a spring tide", texts)
    assert "tides" in script
    assert "predict a spring tide" in script


async def test_simulated_content_failures_are_transient() -> None:
    """With failure rate 1, retrieval and script writing fail with a retryable 503."""
    profile = SimulationProfile(failure_rate=1.0)
    with pytest.raises(TransientBackendError) as failed:
        await SimulatedRetrieval(profile).retrieve("tides")
    assert failed.value.code == 503
    with pytest.raises(TransientBackendError):
        await SimulatedScript(profile).write_script("tides", None, [])


async def test_simulated_content_latency_follows_the_setting() -> None:
    """Content steps take a tenth of the configured generation latency: a 2 s setting ends a
    retrieval after a 0.1 s timer started beside it and before a 0.5 s one."""
    profile = SimulationProfile(latency_seconds=2.0)
    order: list[str] = []

    async def mark(name: str, work: Awaitable[object]) -> None:
        await work
        order.append(name)

    # The event loop fires timers in deadline order, however busy the machine is.
    await asyncio.gather(
        mark("0.1 s", asyncio.sleep(0.1)),
        mark("retrieval", SimulatedRetrieval(profile).retrieve("tides")),
        mark("0.5 s", asyncio.sleep(0.5)),
    )
    assert order == ["0.1 s", "retrieval", "0.5 s"]


async def test_local_storage_prefix_and_urls(storage: LocalStorage) -> None:
    """Outputs sit under a per-request prefix; their public URL is derived from the base URL."""
    rid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    prefix = storage.prefix_for(rid)
    assert prefix == f"local://requests/{rid}/"
    stored = await storage.put(f"{prefix}sample_0.mp4", b"data", "video/mp4")
    assert stored.size == 4
    assert await storage.url_for(stored.uri) == f"http://media.test:8000/media/requests/{rid}/sample_0.mp4"
    assert storage.path_of(stored.uri) == storage.root / "requests" / str(rid) / "sample_0.mp4"


async def test_local_storage_refuses_paths_outside_its_root(storage: LocalStorage) -> None:
    """A URI that climbs out of the media root, or is not local://, is refused."""
    with pytest.raises(InvalidBackendRequest):
        await storage.put("local://requests/../../escape.txt", b"x", "text/plain")
    with pytest.raises(InvalidBackendRequest):
        await storage.url_for("gs://bucket/object.mp4")


async def test_local_storage_lists_only_finished_files(storage: LocalStorage) -> None:
    """Listing a prefix shows written objects, not half-written temporary files, and nothing else's."""
    rid = uuid.uuid4()
    prefix = storage.prefix_for(rid)
    await storage.put(f"{prefix}b.json", b"{}", "application/json")
    await storage.put(f"{prefix}a.mp4", b"video", "video/mp4")
    await storage.put(f"{storage.prefix_for(uuid.uuid4())}other.mp4", b"x", "video/mp4")
    (storage.path_of(prefix) / ".a.mp4.123.tmp").write_bytes(b"partial")
    listed = await storage.list(prefix)
    assert [(o.uri, o.size) for o in listed] == [(f"{prefix}a.mp4", 5), (f"{prefix}b.json", 2)]
    assert await storage.list(storage.prefix_for(uuid.uuid4())) == []
