"""Database commands: migrate, backfill, cleanup."""

from __future__ import annotations

import asyncio

import typer

from service.cli.common import fail, out, run, settings_or_exit
from service.db import migrate as migrations
from service.db.engine import resolve_database_url
from service.db.urls import redact
from service.runtime import Runtime
from service.tracking.retention import delete_expired


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command()(backfill)
    app.command()(cleanup)


def migrate(
    revision: str = typer.Option("head", help="Target revision."),
    down: bool = typer.Option(False, "--down", help="Downgrade to REVISION instead of upgrading."),
) -> None:
    """Apply the schema migrations (the embedded server is started if DATABASE_URL is unset)."""
    settings = settings_or_exit()

    async def body() -> None:
        url = await asyncio.to_thread(resolve_database_url, settings)
        if down:
            await asyncio.to_thread(migrations.downgrade, url, revision)
        else:
            await asyncio.to_thread(migrations.upgrade, url, revision)
        current = await asyncio.to_thread(migrations.current_revision, url)
        out.print(f"database {redact(url)} is at revision {current}")

    run(body)


def backfill() -> None:
    """Replay tracking writes journaled while PostgreSQL was unreachable."""
    settings = settings_or_exit()

    async def body() -> int:
        runtime = await Runtime.start(settings, source_service="backfill")
        try:
            pending = runtime.journal.pending_count()
            if not pending:
                out.print("journal is empty: nothing to backfill")
                return 0
            report = await runtime.tracker.backfill()
        finally:
            await runtime.close()
        out.print(
            f"applied {report.applied} of {pending} journaled writes; "
            f"{report.already_applied} had already landed; "
            f"rejected {report.rejected}; remaining {report.remaining}"
        )
        if report.rejected:
            out.print(f"rejected writes are kept in {runtime.journal.rejected_path}")
        return 0 if report.complete else 1

    code = run(body)
    if code:
        raise fail("PostgreSQL went away during the backfill; run it again", code)


def cleanup() -> None:
    """Run the retention job now: delete terminal requests older than REQUEST_RETENTION_DAYS."""
    settings = settings_or_exit()
    if settings.request_retention_days is None:
        raise fail("REQUEST_RETENTION_DAYS is not set: retention is unlimited and nothing is deleted")
    days = settings.request_retention_days

    async def body() -> int:
        runtime = await Runtime.start(settings, source_service="cleanup")
        try:
            return await delete_expired(runtime.engine, days)
        finally:
            await runtime.close()

    deleted = run(body)
    out.print(f"deleted {deleted} requests older than {days} days")
