"""The monitoring page: `/` redirects to `/monitoring`; the page, its shareable request
URLs, and the login and logout that exchange a `read` key for a session cookie.

The HTML is a shell: the page's script fetches the JSON API right away (first paint
never waits for the stream) and then follows `/api/v1/monitoring/stream` from the
event id rendered here, so nothing committed between the two is missed. Without a
session the page is the login form and carries no data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from service.api.deps import KeysDep, PartsDep, SessionSignerDep
from service.api.schemas import REQUEST_KEY
from service.auth.keys import Scope
from service.auth.sessions import clear_cookie, cookie_principal, set_cookie
from service.pipeline.definitions import PIPELINES
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.repository import StreamRepository
from service.web import assets
from service.wiring import ServiceParts

log = structlog.get_logger("reeltrace.web")
router = APIRouter(include_in_schema=False)
_templates = assets.templates()

PAGE = "/monitoring"
# The page loads only from this server (a second guarantee that nothing comes from a
# CDN), cannot be framed, and posts its forms only here. Inline styles stay allowed:
# progress bars set their width in a style attribute.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
}


async def _signed_in(request: Request, parts: ServiceParts) -> bool:
    if not parts.settings.api_keys_required:
        return True
    return await cookie_principal(request, parts.session_signer, parts.keys) is not None


def _login(
    request: Request, *, error: str | None = None, status_code: int = 200, next_url: str = PAGE
) -> Response:
    return _templates.TemplateResponse(
        request,
        "login.html",
        {"error": error, "next_url": next_url, "static": assets.STATIC_URL},
        status_code=status_code,
        headers=HEADERS,
    )


async def _page(request: Request, runtime: Runtime, settings: Settings, detail: str | None) -> Response:
    boot = {
        "stream_from": await StreamRepository(runtime.database).max_event_id(),
        "pipelines": {name: p.stage_names for name, p in PIPELINES.items()},
        "detail": detail,
        "can_logout": settings.api_keys_required,
        # Elapsed times tick from the server's clock, not a skewed browser's.
        "server_now": datetime.now(UTC).isoformat(),
    }
    return _templates.TemplateResponse(
        request,
        "monitoring.html",
        {"boot": boot, "static": assets.STATIC_URL, "uplot": assets.UPLOT},
        headers=HEADERS,
    )


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(PAGE, status_code=307)


@router.get(PAGE)
async def monitoring(request: Request, parts: PartsDep) -> Response:
    if not await _signed_in(request, parts):
        return _login(request)
    return await _page(request, parts.runtime, parts.settings, None)


@router.get(PAGE + "/requests/{request_key}")
async def monitoring_request(
    request: Request,
    parts: PartsDep,
    request_key: Annotated[str, Path(min_length=1, max_length=64, pattern=REQUEST_KEY)],
) -> Response:
    if not await _signed_in(request, parts):
        return _login(request, next_url=f"{PAGE}/requests/{request_key}")
    return await _page(request, parts.runtime, parts.settings, request_key)


def _safe_next(next_url: str) -> str:
    # Only back into the page itself: never an open redirect to another site.
    if next_url == PAGE or (next_url.startswith(PAGE + "/") and "//" not in next_url):
        return next_url
    return PAGE


@router.post(PAGE + "/login")
async def login(
    request: Request,
    verifier: KeysDep,
    signer: SessionSignerDep,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=200)] = PAGE,
) -> Response:
    """Exchange an API key with the `read` scope for the session cookie."""
    key = api_key.strip()
    if not key:
        return _login(request, error="Enter an API key.", status_code=401, next_url=next_url)
    principal = await verifier.verify(key)
    if principal is None:
        log.warning("browser_session_refused", reason="invalid or revoked key")
        return _login(request, error="Invalid or revoked API key.", status_code=401, next_url=next_url)
    if not principal.allows(Scope.READ):
        log.warning("browser_session_refused", reason="no read scope", key_prefix=principal.prefix)
        return _login(
            request, error="This API key lacks the `read` scope.", status_code=403, next_url=next_url
        )
    log.info("browser_session_started", key_prefix=principal.prefix, key_name=principal.name)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    set_cookie(response, signer, key, secure=request.url.scheme == "https")
    return response


@router.post(PAGE + "/logout")
async def logout() -> Response:
    response = RedirectResponse(PAGE, status_code=303)
    clear_cookie(response)
    return response
