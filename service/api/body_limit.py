"""A cap on request bodies, applied as they arrive rather than after they are read.

Starlette's `RequestBodyLimitMiddleware` counts the bytes of a streamed body and
stops the read past the limit (the route's error handler then answers 413 in the
error shape). A body whose declared Content-Length is already over the limit is
answered here at once, in the same shape: the stock middleware would replace
whatever the app answered with a plain-text 413.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import body_too_large


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_bytes)
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                await body_too_large(self.max_bytes)(scope, receive, send)
                return
        await self.app(scope, receive, send)
