"""Correlation IDs and the per-request logging context.

A correlation ID has the form `vvd_<epoch_ms>_<8 hex>`; it names one request across
logs, traces, events and the API. The context binds request fields to every log line
emitted while a request is being handled, in whichever task or process handles it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

CORRELATION_ID_RE = re.compile(r"^vvd_[0-9]{13}_[0-9a-f]{8}$")


def new_correlation_id(now_ms: int | None = None) -> str:
    """A fresh correlation ID; the timestamp is milliseconds since the epoch."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"vvd_{ms:013d}_{secrets.token_hex(4)}"


def is_correlation_id(value: str) -> bool:
    return CORRELATION_ID_RE.match(value) is not None


@contextmanager
def request_context(**fields: Any) -> Iterator[None]:
    """Bind `request_id`, `correlation_id` and friends to every log line inside."""
    clean = {k: (str(v) if v is not None and k.endswith("_id") else v) for k, v in fields.items()}
    with structlog.contextvars.bound_contextvars(**clean):
        yield
