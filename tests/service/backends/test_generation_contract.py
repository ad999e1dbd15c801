"""One contract for every generation backend: `simulated`, and `vertex` through the Vertex fake.

Both write to Cloud Storage (the emulator): the simulated backend uploads placeholder
videos through the gcs storage backend, the fake writes them where Veo would.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.backends.base import (
    GenerationBackend,
    GenerationRequest,
    InvalidBackendRequest,
    OperationState,
    OperationStatus,
    QuotaExceeded,
)
from service.backends.gcs import GcsStorage
from service.backends.simulated_veo import SimulatedGeneration
from service.backends.simulation_profile import SimulationProfile
from service.backends.vertex import VertexGeneration
from service.settings import Settings
from tests.support.backends import generation_request

MODEL = "veo-3.1-fast-generate-001"
OPERATION_NAME = re.compile(
    rf"^projects/[^/]+/locations/[^/]+/publishers/google/models/{re.escape(MODEL)}/operations/[0-9a-f-]{{36}}$"
)
SECRET_LIKE = re.compile(r"ya29\.|Bearer [A-Za-z0-9]|Traceback")

# How each backend is made to produce an outcome: simulation rates, or prompt markers.
SIM_PROFILES = {
    "succeed": SimulationProfile(latency_seconds=0.3),
    "fail": SimulationProfile(latency_seconds=0.3, failure_rate=1.0),
    "filter": SimulationProfile(latency_seconds=0.3, filter_rate=1.0),
    "quota": SimulationProfile(quota_error_rate=1.0),
}
FAKE_MARKERS = {"succeed": "", "fail": "[fake:fail] ", "filter": "[fake:filter] ", "quota": "[fake:quota] "}


@dataclass
class Harness:
    kind: str
    storage: GcsStorage
    factory: Callable[[str], GenerationBackend]
    opened: list[GenerationBackend] = field(default_factory=list)

    def backend(self, outcome: str = "succeed") -> GenerationBackend:
        """A fresh backend instance (as a restarted worker would build) set up for `outcome`."""
        backend = self.factory(outcome)
        self.opened.append(backend)
        return backend

    def request(self, outcome: str = "succeed", sample_count: int = 1) -> GenerationRequest:
        request_id = uuid.uuid4()
        prompt = "a paper boat drifting down a rainy street"
        if self.kind == "vertex":
            prompt = FAKE_MARKERS[outcome] + prompt
        return generation_request(
            request_id=request_id,
            correlation_id="vvd_1760000000000_0a1b2c3d",
            prompt=prompt,
            duration_seconds=8,
            aspect_ratio="16:9",
            resolution="720p",
            generate_audio=True,
            output_prefix=self.storage.prefix_for(request_id),
            sample_count=sample_count,
            idempotency_key=f"{request_id}:1",
        )


async def poll_until_done(backend: GenerationBackend, name: str) -> OperationStatus:
    async with asyncio.timeout(10):
        while True:
            status = await backend.poll(name)
            if status.state is not OperationState.RUNNING:
                return status
            await asyncio.sleep(0.05)


@pytest.fixture(params=["simulated", "vertex"])
async def harness(
    request: pytest.FixtureRequest, google_settings: Settings, gcs: GcsStorage, tmp_path: Path
) -> AsyncIterator[Harness]:
    """The backend under contract, with a way to force each outcome and build fresh instances."""
    kind: str = request.param
    if kind == "simulated":
        state = tmp_path / "sim" / "operations.sqlite3"

        def factory(outcome: str) -> GenerationBackend:
            return SimulatedGeneration(state, gcs, SIM_PROFILES[outcome], model=MODEL)
    else:

        def factory(outcome: str) -> GenerationBackend:
            return VertexGeneration.from_settings(google_settings)

    harness = Harness(kind, gcs, factory)
    yield harness
    for backend in harness.opened:
        await backend.aclose()


def test_is_a_generation_backend(harness: Harness) -> None:
    """The backend satisfies the GenerationBackend protocol and names its model."""
    backend = harness.backend()
    assert isinstance(backend, GenerationBackend)
    assert backend.model == MODEL


async def test_start_returns_a_veo_operation_name(harness: Harness) -> None:
    """start returns a full Veo-format operation name."""
    name = await harness.backend().start(harness.request())
    assert OPERATION_NAME.match(name), name


async def test_poll_runs_then_succeeds_with_videos_under_the_prefix(harness: Harness) -> None:
    """An operation is running at first, then succeeds with stored videos under the output prefix."""
    backend = harness.backend()
    request = harness.request(sample_count=2)
    name = await backend.start(request)
    assert (await backend.poll(name)).state is OperationState.RUNNING
    status = await poll_until_done(backend, name)
    assert status.state is OperationState.SUCCEEDED
    assert len(status.videos) == 2
    for video in status.videos:
        assert video.uri.startswith(request.output_prefix)
        assert video.uri.endswith(".mp4")
        assert video.mime_type == "video/mp4"
    stored = {o.uri for o in await harness.storage.list(request.output_prefix)}
    assert {v.uri for v in status.videos} <= stored


async def test_operation_failure_maps_to_failed(harness: Harness) -> None:
    """A failed operation maps to FAILED with a code and a non-empty, secret-free message."""
    backend = harness.backend("fail")
    name = await backend.start(harness.request("fail"))
    status = await poll_until_done(backend, name)
    assert status.state is OperationState.FAILED
    assert status.error_code is not None
    assert status.error_message
    assert not SECRET_LIKE.search(status.error_message)
    assert status.videos == ()


async def test_safety_filtering_maps_to_filtered(harness: Harness) -> None:
    """An operation whose videos were all filtered maps to FILTERED with a count and reasons."""
    backend = harness.backend("filter")
    name = await backend.start(harness.request("filter"))
    status = await poll_until_done(backend, name)
    assert status.state is OperationState.FILTERED
    assert status.filtered_count >= 1
    assert status.filtered_reasons
    assert status.videos == ()


async def test_quota_exhaustion_raises_quota_exceeded(harness: Harness) -> None:
    """Quota exhaustion on start raises the retryable QuotaExceeded with code 429."""
    with pytest.raises(QuotaExceeded) as caught:
        await harness.backend("quota").start(harness.request("quota"))
    assert caught.value.retryable is True
    assert caught.value.code == 429


async def test_poll_resumes_from_a_fresh_instance(harness: Harness) -> None:
    """A fresh backend instance polls an operation another instance started, to completion."""
    request = harness.request()
    name = await harness.backend().start(request)
    status = await poll_until_done(harness.backend(), name)
    assert status.state is OperationState.SUCCEEDED
    assert all(v.uri.startswith(request.output_prefix) for v in status.videos)


async def test_unknown_operation_is_an_invalid_request(harness: Harness) -> None:
    """Polling a well-formed name the backend never issued raises InvalidBackendRequest."""
    backend = harness.backend()
    name = await backend.start(harness.request())
    with pytest.raises(InvalidBackendRequest):
        await backend.poll(f"{name.rpartition('/')[0]}/{uuid.uuid4()}")
