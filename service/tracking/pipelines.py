"""What tracking is told of the pipelines by whoever builds it.

Tracking knows no pipeline itself: the runtime hands it, for each pipeline, the stage
rows a new request gets and how long such a request may stay unfinished (the lease
of a request run in-process while PostgreSQL is down). Each pipeline's names also
label the request metrics, declared at 0 from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.tracking.write_values import StageSpec


@dataclass(frozen=True, slots=True)
class TrackedPipeline:
    name: str
    stages: tuple[StageSpec, ...]
    budget_seconds: float
    """How long a request of this pipeline may stay non-terminal."""

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


TrackedPipelines = Mapping[str, TrackedPipeline]


def tracked(pipelines: TrackedPipelines, name: str) -> TrackedPipeline:
    try:
        return pipelines[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(pipelines))}") from None
