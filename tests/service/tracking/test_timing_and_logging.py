"""Timing Metrics and Structured Logging: the figures and the log lines the spec names."""

from __future__ import annotations

import asyncio

from service.runtime import Runtime
from service.video_request import VideoRequest
from telemetry.metrics import get_metrics
from tests.support.logs import json_logs

PROMPT = "An astronaut riding a horse across a neon-lit desert at dusk, 35mm film look, slow pan"
NEW = VideoRequest(user_id="u-log", guild_id="g-log", prompt=PROMPT, aspect_ratio="9:16")


def sample(name: str, **labels: str) -> float:
    value = get_metrics().registry.get_sample_value(name, labels)
    return value or 0.0


async def test_creation_log_has_the_spec_fields_and_a_cut_prompt(runtime: Runtime) -> None:
    """request_created is an info line with request_id, user_id, guild_id, prompt_length, parameters."""
    with json_logs() as lines:
        created = await runtime.tracker.create_request(NEW)
    [line] = lines("request_created")
    assert line["level"] == "info"
    assert line["request_id"] == str(created.id)
    assert (line["user_id"], line["guild_id"]) == ("u-log", "g-log")
    assert line["prompt_length"] == len(PROMPT)
    assert line["prompt"] == PROMPT[:50]
    assert line["parameters"] == {
        "duration_seconds": 8, "aspect_ratio": "9:16", "resolution": "720p", "generate_audio": False
    }  # fmt: skip


async def test_no_log_line_carries_more_than_50_prompt_characters(runtime: Runtime) -> None:
    """Whatever is logged about a request, the prompt beyond its 50th character never appears."""
    with json_logs() as lines:
        created = await runtime.tracker.create_request(NEW)
        await runtime.tracker.start_request(created.id)
        await runtime.tracker.complete_request(created.id, ["u"])
    assert lines()
    assert all(PROMPT[:51] not in str(line) for line in lines())


async def test_status_change_log_has_old_new_and_duration(runtime: Runtime) -> None:
    """status_changed is info with request_id, old_status, new_status, duration_ms (+ error when failed)."""
    created = await runtime.tracker.create_request(NEW)
    with json_logs() as lines:
        await runtime.tracker.start_request(created.id)
        await runtime.tracker.fail_request(created.id, "model exploded", error_stage="video_generation")
    started, failed = lines("status_changed")
    assert (started["old_status"], started["new_status"], started["duration_ms"]) == (
        "pending",
        "generating",
        None,
    )
    assert "error_message" not in started
    assert failed["level"] == "info"
    assert (failed["old_status"], failed["new_status"]) == ("generating", "failed")
    assert isinstance(failed["duration_ms"], int)
    assert failed["error_message"] == "model exploded"
    assert failed["request_id"] == str(created.id)


async def test_stage_log_lines_name_their_attempt(runtime: Runtime) -> None:
    """stage_started and stage_completed both carry the attempt (a completion takes it from the row)."""
    created = await runtime.tracker.create_request(NEW)
    await runtime.tracker.start_request(created.id)
    with json_logs() as lines:
        await runtime.tracker.start_stage(created.id, "validation", 2)
        await runtime.tracker.complete_stage(created.id, "validation")
    [started] = lines("stage_started")
    [completed] = lines("stage_completed")
    assert (started["attempt"], completed["attempt"]) == (2, 2)


async def test_queueing_time_is_logged_and_observed(runtime: Runtime) -> None:
    """pending -> generating logs the queueing time and feeds the queue histogram."""
    before = sample("reeltrace_request_queue_seconds_count", pipeline="veo")
    created = await runtime.tracker.create_request(NEW)
    await asyncio.sleep(0.05)
    with json_logs() as lines:
        result = await runtime.tracker.start_request(created.id)
    [line] = lines("request_queueing")
    assert result is not None
    assert result.started_at is not None
    expected = (result.started_at - result.created_at).total_seconds()
    assert line["queueing_time_seconds"] == expected
    assert expected >= 0.05
    assert sample("reeltrace_request_queue_seconds_count", pipeline="veo") == before + 1


async def test_terminal_status_logs_latency_with_labels(runtime: Runtime) -> None:
    """Any terminal status logs status, duration_seconds and aspect_ratio, and feeds the histogram."""
    labels = {"pipeline": "veo", "status": "timeout", "aspect_ratio": "9:16"}
    before = sample("reeltrace_request_duration_seconds_count", **labels)
    created = await runtime.tracker.create_request(NEW)
    await runtime.tracker.start_request(created.id)
    with json_logs() as lines:
        result = await runtime.tracker.timeout_request(created.id, "Generation timed out after 5 minutes")
    [line] = lines("request_latency")
    assert result is not None
    assert result.duration_ms is not None
    assert (line["status"], line["aspect_ratio"]) == ("timeout", "9:16")
    assert line["duration_seconds"] == result.duration_ms / 1000
    assert sample("reeltrace_request_duration_seconds_count", **labels) == before + 1
    assert sample("reeltrace_requests_finished_total", pipeline="veo", status="timeout") >= 1


async def test_log_lines_inside_a_request_carry_its_ids(runtime: Runtime) -> None:
    """Lines logged while tracking a request carry its request_id and correlation_id."""
    with json_logs() as lines:
        created = await runtime.tracker.create_request(NEW)
    [line] = lines("request_created")
    assert line["correlation_id"] == created.correlation_id
    assert line["logger"] == "reeltrace.tracker"
    assert line["timestamp"].endswith("Z")
