"""The lesson pipeline's simulated retrieval and script writing: deterministic, failing and slowed as set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from service.backends.base import TransientBackendError
from service.backends.simulated_lesson import SimulatedRetrieval, SimulatedScript
from service.backends.simulation_profile import SimulationProfile


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
