"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.db import migrate
from service.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up. Needs no key and touches no dependency."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: PostgreSQL reachable and its schema at the head migration."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            version = (await conn.execute(text("SELECT max(version_num) FROM alembic_version"))).scalar()
        checks["database"] = "ok"
        head = await asyncio.to_thread(migrate.head_revision)
        checks["migrations"] = "ok" if version == head else f"at {version}, head is {head}"
    except Exception as exc:  # any failure here means "not ready", never a 500
        checks.setdefault("database", f"unreachable: {type(exc).__name__}")
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )
