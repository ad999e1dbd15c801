"""Dependencies shared by the routes: the service's parts, typed, and authentication.

Every part comes from the app's one `ServiceParts` (built in `service/wiring.py`);
no route reads the app's state itself.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from service.auth.keys import OPEN_ACCESS, KeyVerifier, Principal, Scope
from service.auth.sessions import SessionSigner, cookie_principal
from service.errors import Forbidden, Unauthorized
from service.pipeline.breaker import BreakerBoard
from service.runtime import Runtime
from service.settings import Settings
from service.streaming.listener import EventHub
from service.wiring import ServiceParts


def parts_of(request: Request) -> ServiceParts:
    """The app's parts, for code that has the request but takes no dependency (the
    submit path, whose one dependency is its authentication)."""
    parts: ServiceParts = request.app.state.parts
    return parts


# Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a
# hop that costs more than the dependency itself on every call.
async def get_parts(request: Request) -> ServiceParts:
    return parts_of(request)


async def get_runtime(request: Request) -> Runtime:
    return parts_of(request).runtime


async def get_settings(request: Request) -> Settings:
    return parts_of(request).settings


async def get_hub(request: Request) -> EventHub:
    return parts_of(request).hub


async def get_keys(request: Request) -> KeyVerifier:
    return parts_of(request).keys


async def get_session_signer(request: Request) -> SessionSigner:
    return parts_of(request).session_signer


async def get_breakers(request: Request) -> BreakerBoard | None:
    return parts_of(request).breakers


PartsDep = Annotated[ServiceParts, Depends(get_parts)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
HubDep = Annotated[EventHub, Depends(get_hub)]
KeysDep = Annotated[KeyVerifier, Depends(get_keys)]
SessionSignerDep = Annotated[SessionSigner, Depends(get_session_signer)]
BreakersDep = Annotated[BreakerBoard | None, Depends(get_breakers)]


def bearer_key(request: Request) -> str | None:
    """The key sent as `Authorization: Bearer <key>`, or None (no header, another scheme)."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    return key if scheme.lower() == "bearer" and key else None


async def authenticate(request: Request) -> Principal:
    """The caller's principal; 401 without a valid key (unless keys are not required)."""
    parts = parts_of(request)
    if not parts.settings.api_keys_required:
        return OPEN_ACCESS
    key = bearer_key(request)
    if key is None:
        # The monitoring page's browser session (read only), else a missing key.
        session = await cookie_principal(request, parts.session_signer, parts.keys)
        if session is not None:
            return session
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    principal = await parts.keys.verify(key)
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
