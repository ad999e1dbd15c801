"""One error shape for every 4xx and 5xx: `{"error": ..., "detail": ...}`.

Expected outcomes are `ReeltraceError`s carrying their status; input errors name
the field; anything else is a bug, logged with the HTTP request id and answered
with a 500 that reveals nothing about the internals.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.schemas import PATTERN_MESSAGES, BudgetRefusal, ErrorBody, FieldError
from service.errors import BudgetExceeded, RateLimited, ReeltraceError, ValidationFailed
from telemetry.correlation import log_context

log = structlog.get_logger("reeltrace.api")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_response(
    status: int,
    error: str,
    detail: str | list[FieldError],
    headers: dict[str, str] | None = None,
    budget: BudgetRefusal | None = None,
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, budget=budget).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


async def handle_reeltrace_error(request: Request, exc: ReeltraceError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status_code >= 500 and exc.status_code != 503:
        log.error("request_error", error=exc.error, detail=exc.detail)
        return error_response(exc.status_code, exc.error, _internal_detail(request), headers)
    detail: str | list[FieldError] = exc.detail or exc.error
    if isinstance(exc, ValidationFailed) and exc.context.get("field"):
        name = str(exc.context["field"])
        if name in request.query_params:
            name = f"query.{name}"
        detail = [FieldError(field=name, message=exc.detail, type="value_error")]
    budget = None
    if isinstance(exc, BudgetExceeded):
        budget = BudgetRefusal(
            scope=exc.scope, spent_usd=exc.spent_usd, limit_usd=exc.limit_usd, resets_at=exc.resets_at
        )
    return error_response(exc.status_code, exc.error, detail, headers, budget)


def _field_error(err: Mapping[str, Any]) -> FieldError:
    loc = err.get("loc", ())
    if err.get("type") == "json_invalid" and len(loc) == 2:
        # FastAPI puts the character offset where a field name goes (`body.28`).
        reason = (err.get("ctx") or {}).get("error", "not valid JSON")
        return FieldError(
            field="body", message=f"invalid JSON at character {loc[1]}: {reason}", type="json_invalid"
        )
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if err.get("type") == "string_pattern_mismatch":  # say what is wrong, not the regex
        message = PATTERN_MESSAGES.get((err.get("ctx") or {}).get("pattern", ""), message)
    return FieldError(field=_field_name(loc), message=message, type=err.get("type"))


def _not_json(request: Request, exc: RequestValidationError) -> str | None:
    """The content type of a body that was sent, but not as JSON (so never parsed)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    unparsed = any(
        tuple(err.get("loc", ())) == ("body",) and err.get("type") == "model_attributes_type"
        for err in exc.errors()
    )
    return (media_type or "no Content-Type") if unparsed else None


async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    sent_as = _not_json(request, exc)
    if sent_as is not None:
        # A body in another format is not invalid input but the wrong kind of body.
        return error_response(
            415,
            "unsupported_media_type",
            f"send the body as JSON (Content-Type: application/json), not {sent_as}",
        )
    return error_response(422, "validation_error", [_field_error(err) for err in exc.errors()])


# Codes whose reason phrase differs between Python versions, pinned to one name.
_ERROR_CODES = {413: "content_too_large"}


def body_too_large(limit: int) -> JSONResponse:
    """The 413 for a body over `limit` bytes (see service.api.body_limit)."""
    return error_response(413, _ERROR_CODES[413], f"the request body is over the limit of {limit} bytes")


def _error_code(status: int) -> str:
    if status in _ERROR_CODES:
        return _ERROR_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    if exc.status_code == 413 and limit is not None:  # a streamed body went past the limit
        return body_too_large(limit)
    error = _error_code(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, error, detail, dict(exc.headers or {}))


def _internal_detail(request: Request | None) -> str:
    rid = getattr(request.state, "request_id", None) if request is not None else None
    return f"internal error; see logs with request id {rid or 'unknown'}"


E = TypeVar("E", bound=Exception)


def _handler(
    exc_type: type[E], handle: Callable[[Request, E], Awaitable[JSONResponse]]
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def dispatch(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, exc_type):  # Starlette routes by class, so this never happens
            raise exc
        return await handle(request, exc)

    return dispatch


def install(app: FastAPI) -> None:
    app.add_exception_handler(ReeltraceError, _handler(ReeltraceError, handle_reeltrace_error))
    app.add_exception_handler(
        RequestValidationError, _handler(RequestValidationError, handle_validation_error)
    )
    app.add_exception_handler(StarletteHTTPException, _handler(StarletteHTTPException, handle_http_exception))


class RequestIdMiddleware:
    """Gives each HTTP request an id (or keeps a sane `X-Request-ID`), binds it to the
    logs, returns it, and turns an unhandled exception into the safe 500 body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), b"").decode(
            "latin-1"
        )
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with log_context(http_request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled_error", method=scope.get("method"), path=scope.get("path"))
                if started:
                    raise  # the response is under way: the server can only cut it
                body = ErrorBody(
                    error="internal_error", detail=f"internal error; see logs with request id {request_id}"
                )
                response = JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=500)
                await response(scope, receive, send_with_id)
