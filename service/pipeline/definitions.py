"""Pipelines: ordered stage lists, and each stage's retry and timeout budget.

This is the one place a stage is defined. A request names its pipeline (`veo` by
default); its stage rows are created from here when the request is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.tracking.writes import StageSpec


@dataclass(frozen=True, slots=True)
class StageDefinition:
    name: str
    max_retries: int = 3
    timeout_seconds: float = 60.0
    # The dependency whose circuit breaker guards this stage's external calls.
    dependency: str | None = None


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    stages: tuple[StageDefinition, ...]

    def stage(self, name: str) -> StageDefinition:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}")

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def budget_seconds(self, generation_timeout: float) -> float:
        """How long a request may stay non-terminal before the watchdog ends it."""
        others = sum(
            s.timeout_seconds * (s.max_retries + 1) for s in self.stages if s.name != "video_generation"
        )
        return generation_timeout + others

    def stage_specs(self, max_retries: int | None = None) -> list[StageSpec]:
        return [
            StageSpec(
                name=s.name,
                order=i,
                max_retries=s.max_retries if max_retries is None else min(s.max_retries, max_retries),
            )
            for i, s in enumerate(self.stages, start=1)
        ]


VALIDATION = StageDefinition("validation", max_retries=0, timeout_seconds=10.0)
RAG_RETRIEVAL = StageDefinition("rag_retrieval", timeout_seconds=30.0, dependency="retrieval")
SCRIPT_GENERATION = StageDefinition("script_generation", timeout_seconds=120.0, dependency="script")
# Its timeout is the generation timeout setting (polling included), not this field.
VIDEO_GENERATION = StageDefinition("video_generation", timeout_seconds=300.0, dependency="generation")
VIDEO_PROCESSING = StageDefinition("video_processing", timeout_seconds=120.0, dependency="storage")
NOTIFICATION = StageDefinition("notification", timeout_seconds=30.0, dependency="notification")

PIPELINES: dict[str, Pipeline] = {
    "veo": Pipeline("veo", (VALIDATION, VIDEO_GENERATION, VIDEO_PROCESSING, NOTIFICATION)),
    "lesson": Pipeline(
        "lesson",
        (VALIDATION, RAG_RETRIEVAL, SCRIPT_GENERATION, VIDEO_GENERATION, VIDEO_PROCESSING, NOTIFICATION),
    ),
}

DEFAULT_PIPELINE = "veo"
# The aspect ratios Veo renders; the API accepts only these.
ASPECT_RATIOS = ("16:9", "9:16")


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}") from None
