"""Simulated retrieval and script writing for the `lesson` pipeline.

They take the same latency and failure settings as simulated generation; real
implementations plug in behind the same interfaces.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from service.backends.base import TransientBackendError
from service.backends.simulation_profile import SimulationProfile
from service.corpus.rows import RetrievedChunk


class _Simulated:
    def __init__(self, profile: SimulationProfile) -> None:
        self.profile = profile

    async def _work(self, key: str) -> None:
        rng = self.profile.rng(key)
        # Content steps are a fraction of generation time in the real pipeline.
        await asyncio.sleep(self.profile.latency(rng) / 10)
        if rng.random() < self.profile.failure_rate:
            raise TransientBackendError(f"simulated {type(self).__name__} failure", code=503)


class SimulatedRetrieval(_Simulated):
    """Made-up passages, labelled as such: only ever chosen explicitly (REELTRACE_RETRIEVAL_BACKEND=simulated)."""

    name = "simulated"

    async def retrieve(
        self,
        query: str,
        k: int = 5,
        *,
        objective: str | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> list[RetrievedChunk]:
        await self._work(f"retrieve:{query}")
        digest = hashlib.sha256(query.encode()).hexdigest()
        return [
            RetrievedChunk(
                chunk_id=i,
                document_id=0,
                position=i,
                heading="simulated",
                text=f"[oer:{digest[i * 6 : i * 6 + 6]}] passage {i + 1} about {query[:60]}",
                title="simulated passage",
                source="simulated",
                licence="none (simulated)",
                url=None,
                score=1.0 / (i + 1),
                fulltext_rank=i + 1,
            )
            for i in range(k)
        ]


class SimulatedScript(_Simulated):
    name = "simulated"
    provider = "simulated"
    model = "simulated-script"

    async def write_script(self, topic: str, objective: str | None, context: list[str]) -> str:
        await self._work(f"script:{topic}:{objective}")
        goal = f" so that learners {objective}" if objective else ""
        return (
            f"A short explainer video on {topic}{goal}. "
            f"Open with a visual hook, walk through {len(context)} key ideas, close with a recap."
        )
