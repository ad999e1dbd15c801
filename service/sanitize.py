"""Sanitising error messages before they are stored or shown to clients.

Stored errors are read by operators and returned by the API, so they must not carry
credentials, signed-URL signatures, tracebacks or unbounded provider payloads.
"""

from __future__ import annotations

import re

from telemetry.logging import redact_text

MAX_ERROR_CHARS = 500

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def sanitize_error(message: str) -> str:
    """A one-line, secret-free message of at most 500 characters."""
    text = _TRACEBACK.sub("", message)
    text = _CONTROL.sub(" ", text)
    text = redact_text(text)
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text or "unknown error"
