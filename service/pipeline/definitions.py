"""Pipelines: ordered stage lists, and each stage's body, output, retry and timeout budget.

This is the one place a stage is defined. A request names its pipeline (`veo` by
default; the names are `service.video_request.PipelineName`); its stage rows are
created from here when the request is created, through what the runtime hands the
tracker (`tracked_pipelines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.pipeline.lesson import RetrievalOutput, ScriptOutput
from service.pipeline.stage import StageDefinition
from service.pipeline.stages import (
    GenerationOutput,
    NotificationOutput,
    ProcessingOutput,
    StageBodies,
    ValidationOutput,
)
from service.tracking.pipelines import TrackedPipeline
from service.tracking.write_values import StageSpec
from service.video_request import PipelineName

__all__ = ["PIPELINES", "Pipeline", "StageDefinition", "get_pipeline", "tracked_pipelines"]


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    stages: tuple[StageDefinition[Any], ...]

    def stage(self, name: str) -> StageDefinition[Any]:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}")

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def outputs(self) -> dict[type[Any], str]:
        """The stage whose output each declared output type is."""
        return {s.output: s.name for s in self.stages}

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

    def tracked(self, max_retries: int | None, generation_timeout: float) -> TrackedPipeline:
        """What the tracker is told of this pipeline."""
        specs = tuple(self.stage_specs(max_retries))
        return TrackedPipeline(self.name, specs, self.budget_seconds(generation_timeout))


VALIDATION = StageDefinition(
    "validation", ValidationOutput, StageBodies.validation, max_retries=0, timeout_seconds=10.0
)
RAG_RETRIEVAL = StageDefinition(
    "rag_retrieval",
    RetrievalOutput,
    lambda bodies, state, attempt: bodies.lesson.rag_retrieval(state, attempt),
    timeout_seconds=30.0,
    dependency="retrieval",
)
SCRIPT_GENERATION = StageDefinition(
    "script_generation",
    ScriptOutput,
    lambda bodies, state, attempt: bodies.lesson.script_generation(state, attempt),
    timeout_seconds=120.0,
    dependency="script",
)
# Its timeout is the generation timeout setting (polling included), not this field.
VIDEO_GENERATION = StageDefinition(
    "video_generation",
    GenerationOutput,
    StageBodies.video_generation,
    timeout_seconds=300.0,
    dependency="generation",
)
VIDEO_PROCESSING = StageDefinition(
    "video_processing",
    ProcessingOutput,
    StageBodies.video_processing,
    timeout_seconds=120.0,
    dependency="storage",
)
NOTIFICATION = StageDefinition(
    "notification",
    NotificationOutput,
    StageBodies.notification,
    timeout_seconds=30.0,
    dependency="notification",
)

PIPELINES: dict[PipelineName, Pipeline] = {
    "veo": Pipeline("veo", (VALIDATION, VIDEO_GENERATION, VIDEO_PROCESSING, NOTIFICATION)),
    "lesson": Pipeline(
        "lesson",
        (VALIDATION, RAG_RETRIEVAL, SCRIPT_GENERATION, VIDEO_GENERATION, VIDEO_PROCESSING, NOTIFICATION),
    ),
}


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}") from None


def tracked_pipelines(max_retries: int | None, generation_timeout: float) -> dict[str, TrackedPipeline]:
    """Each pipeline's stage rows and budget, for the tracker (which knows no pipeline)."""
    return {name: p.tracked(max_retries, generation_timeout) for name, p in PIPELINES.items()}
