"""The `lesson` pipeline's script writer on Gemini (Vertex AI, through google-genai).

The script is added to the request's prompt for Veo, so Gemini is asked for one
short paragraph describing what the video shows and says, grounded in the retrieved
passages. Retrieval stays a separate, pluggable backend.
"""

from __future__ import annotations

from google import genai
from google.genai import types

from service.backends.base import InvalidBackendRequest
from service.backends.google_clients import PROVIDER, classify_error, genai_client
from service.settings import Settings

SYSTEM_INSTRUCTION = (
    "You write the scene description for a short educational video made by a text-to-video model. "
    "Answer with one plain paragraph of at most 120 words describing what is seen and heard, in order. "
    "No title, no lists, no markdown. Use only facts supported by the source passages."
)
# Passages are cut so a long retrieval result cannot blow up the request.
MAX_PASSAGE_CHARS = 1500
MAX_OUTPUT_TOKENS = 512


def script_prompt(topic: str, objective: str | None, context: list[str]) -> str:
    lines = [f"Topic: {topic}"]
    if objective:
        lines.append(f"Learning objective: learners {objective}")
    if context:
        lines.append("Source passages:")
        lines.extend(f"- {passage[:MAX_PASSAGE_CHARS]}" for passage in context)
    return "\n".join(lines)


def _value(enum_or_text: object) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text))


class GeminiScript:
    name = "gemini"
    provider = PROVIDER

    def __init__(self, client: genai.Client, *, model: str) -> None:
        self._client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> GeminiScript:
        return cls(genai_client(settings), model=settings.gemini_model)

    async def write_script(self, topic: str, objective: str | None, context: list[str]) -> str:
        config = types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION, max_output_tokens=MAX_OUTPUT_TOKENS
        )
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=script_prompt(topic, objective, context), config=config
            )
        except Exception as exc:
            raise classify_error(exc, "Gemini generateContent") from exc
        text = (response.text or "").strip()
        if not text:
            # A blocked prompt or a candidate stopped by safety: the same input fails again.
            reason = "no candidates"
            if response.prompt_feedback and response.prompt_feedback.block_reason:
                reason = f"prompt blocked: {_value(response.prompt_feedback.block_reason)}"
            elif response.candidates and response.candidates[0].finish_reason:
                reason = f"finish reason {_value(response.candidates[0].finish_reason)}"
            raise InvalidBackendRequest(f"Gemini returned no script ({reason})", code="empty_script")
        return text

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()
