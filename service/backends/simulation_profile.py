"""Shared knobs of the simulated backends: latency, jitter and injected failures.

Randomness is drawn per call key (e.g. request id and attempt) from the configured
seed, so a seeded run makes the same choices whatever order requests run in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from service.settings import Settings


@dataclass(frozen=True, slots=True)
class SimulationProfile:
    latency_seconds: float = 0.0
    jitter_seconds: float = 0.0
    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    quota_error_rate: float = 0.0
    filter_rate: float = 0.0
    seed: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulationProfile:
        return cls(
            latency_seconds=settings.sim_latency_seconds,
            jitter_seconds=settings.sim_jitter_seconds,
            failure_rate=settings.sim_failure_rate,
            timeout_rate=settings.sim_timeout_rate,
            quota_error_rate=settings.sim_quota_error_rate,
            filter_rate=settings.sim_filter_rate,
            seed=settings.sim_seed,
        )

    def rng(self, key: str) -> random.Random:
        """A generator for one decision point; seeded runs are reproducible per key."""
        if self.seed is None:
            return random.Random()  # noqa: S311 - simulation, not security
        return random.Random(f"{self.seed}:{key}")  # noqa: S311

    def latency(self, rng: random.Random) -> float:
        return max(0.0, self.latency_seconds + rng.uniform(-self.jitter_seconds, self.jitter_seconds))
