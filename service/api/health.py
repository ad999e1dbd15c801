"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep, SettingsDep
from service.db import migrate
from service.db.revision import RevisionRepository
from telemetry.tracing import reaches_jaeger, untraced

router = APIRouter(tags=["health"])

# Checks that inform without deciding readiness: the service serves without them.
ADVISORY = frozenset({"traces"})
NO_TRACE_EXPORT = (
    "not exported: REELTRACE_JAEGER_URL is set but no trace exporter is configured "
    "(set OTEL_EXPORTER_OTLP_ENDPOINT); trace links lead to traces Jaeger never receives"
)


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
async def readyz(runtime: RuntimeDep, settings: SettingsDep) -> JSONResponse:
    """Ready to serve: PostgreSQL reachable and its schema at the head migration. Needs no key.

    With REELTRACE_JAEGER_URL set, `checks.traces` says whether spans are exported at
    all; it informs and never makes the service unready.
    """
    checks: dict[str, str] = {}
    try:
        with untraced():  # probes every few seconds; /readyz itself is not traced either
            version = await RevisionRepository(runtime.database).current()
    except Exception as exc:  # any failure here means "not ready", never a 500
        checks["database"] = f"unreachable: {type(exc).__name__}"
    else:
        checks["database"] = "ok"
        head = await asyncio.to_thread(migrate.head_revision)
        if version is None:
            checks["migrations"] = f"not migrated; head is {head}: run `reeltrace migrate`"
        else:
            checks["migrations"] = "ok" if version == head else f"at {version}, head is {head}"
    if settings.jaeger_url:
        checks["traces"] = "ok" if reaches_jaeger() else NO_TRACE_EXPORT
    failing = {name: value for name, value in checks.items() if value != "ok" and name not in ADVISORY}
    if not failing:
        return JSONResponse({"status": "ready", "checks": checks})
    # The error shape every 5xx has, with the per-check view probes and people read.
    detail = "; ".join(f"{name} {value}" for name, value in failing.items())
    return JSONResponse(
        {"error": "not_ready", "detail": detail, "status": "not_ready", "checks": checks}, status_code=503
    )


# HEAD too, for load balancers and uptime checks that probe with it (the same answers,
# bodies dropped; kept out of the schema, where they would repeat the GET operations).
for _path, _probe in (("/healthz", healthz), ("/readyz", readyz)):
    router.add_api_route(_path, _probe, methods=["HEAD"], include_in_schema=False)
