"""Database commands: migrate, backfill, cleanup."""

from __future__ import annotations

import asyncio

import typer
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from service.cli.common import command_runtime, database_settings, fail, out, run
from service.db import migrate as migrations
from service.db.server import resolve_database_url
from service.db.urls import redact
from service.errors import ValidationFailed
from service.tracking.retention import delete_expired


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command()(backfill)
    app.command()(cleanup)


def migrate(
    revision: str | None = typer.Option(
        None, "--revision", help="Target revision (default: head; required with --down, e.g. 0004 or base)."
    ),
    down: bool = typer.Option(False, "--down", help="Downgrade to REVISION instead of upgrading."),
) -> None:
    """Apply the schema migrations (to the embedded server `serve` made if DATABASE_URL is unset)."""
    if down and revision is None:
        # Alembic's default target would be the current revision: a silent no-op.
        raise fail("--down needs --revision: the revision to go down to (e.g. 0004, or base for all)")
    settings = database_settings()

    def apply(url: str) -> str | None:
        if down:
            migrations.downgrade(url, str(revision))
        else:
            _check_upgrade_target(url, revision or "head")
            migrations.upgrade(url, revision or "head")
        return migrations.current_revision(url)

    async def body() -> str:
        url = await asyncio.to_thread(resolve_database_url, settings)
        try:
            current = await asyncio.to_thread(apply, url)
        except CommandError as exc:  # alembic's: an unknown revision, a downgrade "up"
            raise ValidationFailed(f"--revision {revision}: {exc}", field="revision") from None
        return f"database {redact(url)} is at revision {current}"

    out.print(run(body), highlight=False, markup=False)


def _check_upgrade_target(url: str, revision: str) -> None:
    """Refuse an upgrade to a revision below the current one, which alembic does as nothing."""
    current = migrations.current_revision(url)
    if current is None:
        return
    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    try:
        target = script.get_revision(revision)  # None for base
    except CommandError:
        return  # relative (+1) or unknown: alembic's upgrade applies or reports it
    below = {r.revision for r in script.iterate_revisions(current, "base")} - {current}
    if target is None or target.revision in below:
        raise ValidationFailed(
            f"--revision {revision} is below the current revision {current}: "
            "upgrading to it does nothing; add --down to downgrade",
            field="revision",
        )


def backfill() -> None:
    """Replay tracking writes journaled while PostgreSQL was unreachable."""
    settings = database_settings()

    async def body() -> int:
        async with command_runtime(settings, "backfill") as runtime:
            pending = runtime.journal.pending_count()
            if not pending:
                out.print("journal is empty: nothing to backfill")
                return 0
            report = await runtime.tracker.backfill()
        if report.busy:
            out.print(f"another reeltrace process is replaying the journal now ({pending} writes pending)")
            return 0
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
    settings = database_settings()
    if settings.request_retention_days is None:
        # Keeping everything is a valid configuration (the default), not an error.
        out.print("retention is not configured (REQUEST_RETENTION_DAYS is unset): nothing is deleted")
        return
    days = settings.request_retention_days

    async def body() -> int:
        async with command_runtime(settings, "cleanup") as runtime:
            return await delete_expired(runtime.database, days)

    deleted = run(body)
    out.print(f"deleted {deleted} requests older than {days} days")
