"""`reeltrace serve`: the API (and, unless told otherwise, a worker) in one process."""

from __future__ import annotations

import typer
import uvicorn

from service.api.app import create_app
from service.cli.common import out, run, settings_or_exit
from service.db.urls import redact
from service.runtime import Runtime


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (REELTRACE_HOST)."),
    port: int | None = typer.Option(None, help="Port to bind (REELTRACE_PORT)."),
) -> None:
    """Start the service. Without DATABASE_URL, an embedded PostgreSQL is started and migrated."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(**overrides)

    async def body() -> None:
        runtime = await Runtime.start(settings, source_service="api")
        where = (
            f"embedded PostgreSQL in {settings.data_dir.resolve() / 'pgdata'}"
            if runtime.embedded
            else "DATABASE_URL"
        )
        out.print(f"PostgreSQL: {where} ({redact(runtime.database_url)})")
        out.print(f"reeltrace listening on http://{settings.host}:{settings.port}  (docs at /docs)")
        app = create_app(settings, runtime)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await runtime.close()

    run(body)
