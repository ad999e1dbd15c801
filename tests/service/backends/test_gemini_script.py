"""The Gemini script backend: the real google-genai client against the fake generateContent route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.backends.base import InvalidBackendRequest, QuotaExceeded, ScriptBackend, TransientBackendError
from service.backends.gemini_script import MAX_PASSAGE_CHARS, SYSTEM_INSTRUCTION, GeminiScript
from service.settings import Settings
from tests.service.backends.conftest import PROJECT
from tests.support.vertex_fake import VertexFake


@pytest.fixture
async def gemini(google_settings: Settings) -> AsyncIterator[GeminiScript]:
    backend = GeminiScript.from_settings(google_settings)
    yield backend
    await backend.aclose()


def test_implements_the_script_protocol(gemini: GeminiScript) -> None:
    """The Gemini backend satisfies ScriptBackend and names its provider and model."""
    assert isinstance(gemini, ScriptBackend)
    assert (gemini.name, gemini.provider, gemini.model) == ("gemini", "gcp.vertex_ai", "gemini-2.5-flash")


async def test_write_script_returns_the_model_text(gemini: GeminiScript, vertex_fake: VertexFake) -> None:
    """The script is the text of Gemini's first candidate."""
    script = await gemini.write_script("the water cycle", "can name its four stages", ["Water evaporates."])
    assert script == vertex_fake.script_text


async def test_request_carries_topic_objective_and_passages(
    gemini: GeminiScript, vertex_fake: VertexFake
) -> None:
    """generateContent goes to the v1 Gemini route with the topic, objective, passages and instructions."""
    long_passage = "x" * (MAX_PASSAGE_CHARS + 500)
    await gemini.write_script(
        "the water cycle", "can name its four stages", ["Water evaporates.", long_passage]
    )
    [sent] = vertex_fake.requests_to("generateContent")
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    [content] = sent.body["contents"]
    text = content["parts"][0]["text"]
    assert content["role"] == "user"
    assert "Topic: the water cycle" in text
    assert "Learning objective: learners can name its four stages" in text
    assert "- Water evaporates." in text
    assert "x" * (MAX_PASSAGE_CHARS + 1) not in text
    assert sent.body["systemInstruction"]["parts"][0]["text"] == SYSTEM_INSTRUCTION


async def test_blocked_prompt_is_not_retryable(gemini: GeminiScript, vertex_fake: VertexFake) -> None:
    """A prompt Gemini blocks yields no script and raises InvalidBackendRequest naming the reason."""
    vertex_fake.script_text = None
    with pytest.raises(InvalidBackendRequest, match="prompt blocked: SAFETY"):
        await gemini.write_script("the water cycle", None, [])


async def test_quota_exhaustion_raises_quota_exceeded(gemini: GeminiScript, vertex_fake: VertexFake) -> None:
    """A 429 answer raises QuotaExceeded, as for Veo."""
    vertex_fake.fail_next(429)
    with pytest.raises(QuotaExceeded):
        await gemini.write_script("the water cycle", None, [])


async def test_server_errors_are_transient(gemini: GeminiScript, vertex_fake: VertexFake) -> None:
    """A 503 answer raises TransientBackendError."""
    vertex_fake.fail_next(503)
    with pytest.raises(TransientBackendError):
        await gemini.write_script("the water cycle", None, [])
