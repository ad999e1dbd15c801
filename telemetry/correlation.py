"""Correlation IDs and the per-request context of logs and spans.

A correlation ID has the form `vvd_<epoch_ms>_<8 hex>`; it names one request across
logs, traces, events and the API. `request_context` binds the request's identity to
every log line and every span started inside it, in whichever task or process
handles the request (see `RequestAttributesSpanProcessor` in `telemetry.tracing`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

CORRELATION_ID_RE = re.compile(r"^vvd_[0-9]{13}_[0-9a-f]{8}$")

# Log field -> span attribute, for the fields every span of a request carries.
SPAN_ATTRIBUTE_NAMES = {
    "correlation_id": "correlation_id",
    "request_id": "request.id",
    "pipeline": "pipeline",
}

_span_attributes: ContextVar[Mapping[str, str] | None] = ContextVar("reeltrace_span_attributes", default=None)
# The fields every log line inside a context carries. One variable holding a small
# mapping, replaced (never mutated) per context: structlog's own contextvars helpers
# scan the whole context on every bind and every log line, a cost paid per request.
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_log_fields: ContextVar[Mapping[str, Any]] = ContextVar("reeltrace_log_fields", default=_NO_FIELDS)


def new_correlation_id(now_ms: int | None = None) -> str:
    """A fresh correlation ID; the timestamp is milliseconds since the epoch."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"vvd_{ms:013d}_{secrets.token_hex(4)}"


def is_correlation_id(value: str) -> bool:
    return CORRELATION_ID_RE.match(value) is not None


def current_span_attributes() -> Mapping[str, str] | None:
    """The request attributes that spans started now should carry."""
    return _span_attributes.get()


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every log line written inside (see `merge_log_context`)."""
    token = _log_fields.set({**_log_fields.get(), **fields})
    try:
        yield
    finally:
        _log_fields.reset(token)


def merge_log_context(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the context's fields, unless the call itself names them."""
    for key, value in _log_fields.get().items():
        event_dict.setdefault(key, value)
    return event_dict


@contextmanager
def request_context(**fields: Any) -> Iterator[None]:
    """Bind `request_id`, `correlation_id` and friends to log lines and spans inside."""
    clean = {k: (str(v) if v is not None and k.endswith("_id") else v) for k, v in fields.items()}
    attrs = dict(_span_attributes.get() or {})
    attrs.update(
        {SPAN_ATTRIBUTE_NAMES[k]: str(v) for k, v in clean.items() if k in SPAN_ATTRIBUTE_NAMES and v}
    )
    token = _span_attributes.set(attrs)
    try:
        with log_context(**clean):
            yield
    finally:
        _span_attributes.reset(token)
