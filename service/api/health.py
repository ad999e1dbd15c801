"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import migrate
from service.runtime import Runtime
from telemetry.tracing import untraced

router = APIRouter(tags=["health"])

HAS_VERSION_TABLE = text("SELECT to_regclass('alembic_version') IS NOT NULL")
CURRENT_REVISION = text("SELECT max(version_num) FROM alembic_version")


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The database's migration revision (None when it was never migrated)."""
    async with engine.connect() as conn:
        if not (await conn.execute(HAS_VERSION_TABLE)).scalar():
            return None
        revision = (await conn.execute(CURRENT_REVISION)).scalar()
        return None if revision is None else str(revision)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up. Needs no key and touches no dependency."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {"description": "Not ready: PostgreSQL unreachable or its schema not at the head migration."}
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: PostgreSQL reachable and its schema at the head migration. Needs no key."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        with untraced():  # probes every few seconds; /readyz itself is not traced either
            version = await schema_revision(runtime.engine)
    except Exception as exc:  # any failure here means "not ready", never a 500
        checks["database"] = f"unreachable: {type(exc).__name__}"
    else:
        checks["database"] = "ok"
        head = await asyncio.to_thread(migrate.head_revision)
        if version is None:
            checks["migrations"] = f"not migrated; head is {head}: run `reeltrace migrate`"
        else:
            checks["migrations"] = "ok" if version == head else f"at {version}, head is {head}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )
