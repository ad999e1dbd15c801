"""Dependencies shared by the routes: the runtime, settings and authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.keys import OPEN_ACCESS, KeyVerifier, Principal, Scope
from service.errors import Forbidden, Unauthorized
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.listener import EventHub
from service.web.session import cookie_principal

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`rt_...`), sent as `Authorization: Bearer <key>`.",
)


# Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a
# hop that costs more than the dependency itself on every call.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
HubDep = Annotated[EventHub, Depends(get_hub)]


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller's principal; 401 without a valid key (unless keys are not required)."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys_required:
        return OPEN_ACCESS
    if credentials is None:
        # The monitoring page's browser session (read only), else a missing key.
        session = await cookie_principal(request)
        if session is not None:
            return session
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    verifier: KeyVerifier = request.app.state.keys
    principal = await verifier.verify(credentials.credentials)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


@cache
def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the call through only with `scope` (admin implies all)."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the `{scope.value}` scope")
        return principal

    check.__name__ = f"require_{scope.value}"
    return check


SubmitAccess = Annotated[Principal, Depends(require_scope(Scope.SUBMIT))]
read_access = Depends(require_scope(Scope.READ))
