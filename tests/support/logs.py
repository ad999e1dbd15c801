"""Capturing the JSON log lines reeltrace really writes (processors included)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from telemetry.logging import configure_logging

LogLines = Callable[..., list[dict[str, Any]]]


@contextmanager
def json_logs(level: str = "debug") -> Iterator[LogLines]:
    """Route logging to a buffer as JSON; yields `lines(event=None)` returning parsed lines."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging(level, "json", stream=buffer)

    def lines(event: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
        return [p for p in parsed if event is None or p.get("event") == event]

    try:
        yield lines
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
