"""Dependencies shared by the routes: the runtime, settings and authentication."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from service.auth.keys import OPEN_ACCESS, KeyVerifier, Principal, Scope
from service.errors import Forbidden, Unauthorized
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.listener import EventHub
from service.web.session import cookie_principal


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


def bearer_key(request: Request) -> str | None:
    """The key sent as `Authorization: Bearer <key>`, or None (no header, another scheme)."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    return key if scheme.lower() == "bearer" and key else None


async def authenticate(request: Request) -> Principal:
    """The caller's principal; 401 without a valid key (unless keys are not required)."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys_required:
        return OPEN_ACCESS
    key = bearer_key(request)
    if key is None:
        # The monitoring page's browser session (read only), else a missing key.
        session = await cookie_principal(request)
        if session is not None:
            return session
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    verifier: KeyVerifier = request.app.state.keys
    principal = await verifier.verify(key)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


class ScopedAccess(HTTPBearer):
    """A route's whole authentication, as one dependency: the principal, if it holds `scope`.

    One dependency rather than a chain (bearer scheme, then key, then scope): FastAPI
    resolves each link on every call. Being an `HTTPBearer`, it still documents the
    `ApiKey` scheme in OpenAPI.
    """

    def __init__(self, scope: Scope) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="ApiKey",
            description="An API key (`rt_...`), sent as `Authorization: Bearer <key>`.",
        )
        self.scope = scope

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await authenticate(request)
        if not principal.allows(self.scope):
            raise Forbidden(f"this API key lacks the `{self.scope.value}` scope")
        return principal


@cache
def require_scope(scope: Scope) -> ScopedAccess:
    """The dependency that lets a call through only with `scope` (admin implies all)."""
    return ScopedAccess(scope)


SubmitAccess = Annotated[Principal, Depends(require_scope(Scope.SUBMIT))]
read_access = Depends(require_scope(Scope.READ))
