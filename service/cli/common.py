"""What every command shares: settings with readable errors, logging, async runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from service.errors import ConfigurationError, ReeltraceError
from service.settings import Settings, load_settings
from telemetry.logging import configure_logging

T = TypeVar("T")

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Load settings; an invalid one ends the command with a message naming the variable."""
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; domain errors end it with a message, not a traceback."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except ReeltraceError as exc:
        raise fail(exc.detail or type(exc).__name__) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
