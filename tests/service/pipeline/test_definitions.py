"""The stage registry: every pipeline a request may name is defined, and outputs are read by type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import get_args

from service.pipeline.definitions import PIPELINES, VIDEO_GENERATION, tracked_pipelines
from service.pipeline.lesson import ScriptOutput
from service.pipeline.run_state import RunState, StageState, WorkItem
from service.pipeline.stages import GenerationOutput
from service.request_states import RequestStatus
from service.video_request import PipelineName, VideoRequest


def state(pipeline: str) -> RunState:
    item = WorkItem(
        id=uuid.uuid4(), correlation_id="vvd_1_00000000",
        request=VideoRequest.model_construct(user_id="u", prompt="p", pipeline=pipeline),
        status=RequestStatus.PENDING, operation_name=None, gcs_prefix=None, trace_id=None, traceparent=None,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    definition = PIPELINES[pipeline]  # type: ignore[index]
    retries = {s.name: s.max_retries for s in definition.stages}
    return RunState.fresh(item, definition.stage_names, retries, definition.outputs)


def test_every_pipeline_name_has_a_pipeline() -> None:
    """The pipelines a request may name and the pipelines defined are the same set."""
    assert set(PIPELINES) == set(get_args(PipelineName))


def test_an_output_is_read_back_by_its_type() -> None:
    """A stage's output is found by the output type its definition declares."""
    run = state("veo")
    run.stages[VIDEO_GENERATION.name] = StageState(
        output={"operation_name": "op", "videos": ["v"], "polls": 1}
    )
    assert run.output(GenerationOutput)["videos"] == ["v"]


def test_an_output_of_a_stage_the_pipeline_lacks_is_empty() -> None:
    """Reading the output of a stage its pipeline does not have gives an empty output."""
    assert state("veo").output(ScriptOutput) == {}


def test_tracking_is_told_each_pipelines_stage_rows() -> None:
    """The tracker is handed each pipeline's stages in order, retries capped by the setting."""
    tracked = tracked_pipelines(1, 300.0)
    assert tracked["lesson"].stage_names == PIPELINES["lesson"].stage_names
    assert {s.max_retries for s in tracked["veo"].stages} == {0, 1}
