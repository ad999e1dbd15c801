"""The built-in pipelines' stages, as their definitions give them, for tests that follow whole runs.

A test that walks a request through its pipeline takes the stage names from here, so a
stage added to a pipeline's definition needs no test edited to match.
"""

from __future__ import annotations

from service.pipeline.definitions import get_pipeline
from service.pipeline.runner import NOTIFICATION


def stage_names(pipeline: str = "veo") -> list[str]:
    """Every stage row a request of `pipeline` gets, in order."""
    return get_pipeline(pipeline).stage_names


def run_stages(pipeline: str = "veo") -> list[str]:
    """The stages a run without a callback URL works through, in order (its notification is skipped)."""
    return [name for name in stage_names(pipeline) if name != NOTIFICATION]
