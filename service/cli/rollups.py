"""Rollup commands: `reeltrace rollups rebuild [--since T]`."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from service.cli.common import command_runtime, fail, one_shot_settings, out, run
from service.tracking.rollups import RebuildReport, rebuild

rollups_app = typer.Typer(
    name="rollups",
    help="The per-minute and per-hour rollups behind the dashboard and the hourly metrics.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(rollups_app)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00Z)") from None
    # A time without an offset is read as UTC, the time of the rows and the buckets.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@rollups_app.command("rebuild")
def rebuild_command(
    since: str | None = typer.Option(
        None,
        "--since",
        help="Recompute the buckets of requests created from this time (rounded down to its hour); "
        "default: from the retention horizon, or everything when retention is off.",
    ),
) -> None:
    """Recompute the rollups from the rows (after a bulk load, a hand-made fix, or a restore)."""
    start = _parse_since(since)
    settings = one_shot_settings()

    async def body() -> RebuildReport:
        async with command_runtime(settings, "rollups") as runtime:
            return await rebuild(
                runtime.database, since=start, retention_days=settings.request_retention_days
            )

    report = run(body)
    scope = f"from {report.since.isoformat()}" if report.since else "for every request"
    out.print(
        f"rebuilt the rollups {scope}: {report.requests} finished requests in {report.buckets} hourly "
        "and minute buckets",
        highlight=False,
        markup=False,
    )
