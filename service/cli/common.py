"""What every command shares: settings with readable errors, logging, consoles, async runs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from service.db.embedded import cluster_exists
from service.errors import ConfigurationError, ReeltraceError
from service.runtime import Runtime
from service.settings import Settings, load_settings
from telemetry.logging import configure_logging

T = TypeVar("T")

# The width of output that goes to a pipe or a file. Rich would otherwise fit tables
# to the terminal the command was started from (or 80 columns), cutting identifiers
# with "…" and breaking numbers over lines that a script then cannot read. Tables do
# not expand, so they stay as wide as their content; this is only the ceiling.
PIPED_WIDTH = 10_000

# Info lines (`database_ready`, `api_key_created`, ...) describe a long-running
# process; a command that answers once and exits shows its answer instead.
ONE_SHOT_LOG_LEVEL = "warning"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def make_console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or, when the stream is not one, wide enough
    never to squeeze a table. An explicit COLUMNS still wins, as it does for rich.
    """
    stream = sys.stderr if stderr else sys.stdout
    piped = not _is_terminal(stream) and not os.environ.get("COLUMNS", "").isdigit()
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


console = make_console(stderr=True)
out = make_console()


def fail(message: str, code: int = 2) -> typer.Exit:
    # Escaped: a message quoting a value such as "[x]" must not be read as rich markup.
    console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _load(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None


def _configure_logging(settings: Settings, level: str) -> None:
    """JSON lines unless REELTRACE_LOG_FORMAT says otherwise or a person reads them: on a
    terminal, structlog's console lines (in colour unless NO_COLOR is set)."""
    terminal = _is_terminal(sys.stderr)
    fmt = settings.log_format or ("console" if terminal else "json")
    colors = fmt == "console" and terminal and "NO_COLOR" not in os.environ
    configure_logging(level, fmt, colors=colors)


def settings_or_exit(**overrides: Any) -> Settings:
    """Load settings; an invalid one ends the command with a message naming the variable."""
    settings = _load(**overrides)
    _configure_logging(settings, settings.log_level)
    return settings


def one_shot_settings() -> Settings:
    """Settings for a command that answers once and exits (`keys`, `migrate`, `status`, ...).

    It logs warnings and errors only, unless REELTRACE_LOG_LEVEL is set explicitly: the
    info lines of `serve` and `worker` would bury its answer on the terminal.
    """
    settings = _load()
    explicit = "log_level" in settings.model_fields_set
    _configure_logging(settings, settings.log_level if explicit else ONE_SHOT_LOG_LEVEL)
    return settings


def database_settings() -> Settings:
    """`one_shot_settings` for a command that works on the database `serve` made.

    Such a command never creates the embedded cluster: run from the wrong place or
    before the first `serve`, it would start an empty one and answer from it (an empty
    key list, nothing to export). It says where it looked and how to start one instead.
    """
    settings = one_shot_settings()
    if settings.database_url is None and not cluster_exists(settings.data_dir):
        where = settings.data_dir.expanduser().resolve() / "pgdata"
        raise fail(
            f"no reeltrace database: DATABASE_URL is unset and there is no embedded PostgreSQL in {where} "
            "(REELTRACE_DATA_DIR); start one with `reeltrace serve`, or set REELTRACE_DATA_DIR or "
            "DATABASE_URL to the one you use",
            1,
        )
    return settings


def run(
    coro_fn: Callable[[], Awaitable[T]],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run an async command body; domain errors end it with a message, not a traceback.

    `loop_factory` picks another event loop (the worker's uvloop)."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro_fn())  # type: ignore[arg-type]
    except ReeltraceError as exc:
        raise fail(exc.detail or type(exc).__name__) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@asynccontextmanager
async def command_runtime(settings: Settings, source_service: str = "cli") -> AsyncIterator[Runtime]:
    """The runtime of one command: started (the embedded PostgreSQL too, migrated), and
    closed when the command is done with it, however it ends."""
    runtime = await Runtime.start(settings, source_service=source_service)
    try:
        yield runtime
    finally:
        await runtime.close()
