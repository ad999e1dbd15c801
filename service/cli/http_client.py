"""A small HTTP client of the reeltrace API for the CLI: where it calls, JSON calls and SSE streams.

Errors come back as `ApiError` with a one-line message naming the problem, never a
traceback. Server-Sent Events are parsed here (the format is a few line rules), so
the CLI needs nothing beyond httpx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.settings import Settings

# Where the CLI calls when neither REELTRACE_API_URL nor REELTRACE_HOST/PORT are set.
DEFAULT_API_URL = "http://127.0.0.1:8000"
# A server bound to every address is reached, from its own machine, on loopback.
ANY_ADDRESS = {"0.0.0.0", "::", "[::]", ""}  # noqa: S104 (compared with, never bound)


def api_url(settings: Settings) -> str:
    """REELTRACE_API_URL when set, else where `reeltrace serve` listens with these settings."""
    if settings.api_url:
        return settings.api_url
    host = settings.host.strip()
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{settings.port}"


_HINTS = {
    401: "set REELTRACE_API_KEY to a valid key (reeltrace keys create)",
    403: "use a key with the needed scope (reeltrace keys create --scopes ...)",
}


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    id: str | None = None
    event: str = "message"

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseParser:
    """Turns the lines of an event stream into events (https://html.spec.whatwg.org/#event-streams)."""

    last_event_id: str | None = None
    comments: int = 0
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """Feed one line (without its end); an event is returned at the blank line ending it."""
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(data="\n".join(self._data), id=self._id, event=self._event or "message")
            if self._id is not None:
                self.last_event_id = self._id
            self._data, self._event, self._id = [], "", None
            return event
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


class ApiError(Exception):
    """An answer other than success, or no answer at all."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: str | None = None,
        fields: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.retry_after = retry_after
        # (field, message) of each input the API refused, for a caller to name in its terms.
        self.fields = fields or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        fields = (
            [(str(d.get("field")), str(d.get("message"))) for d in detail if isinstance(d, dict)]
            if isinstance(detail, list)
            else []
        )
        if isinstance(detail, list):
            text = "; ".join(f"{field}: {message}" for field, message in fields)
        else:
            text = str(detail or response.reason_phrase)
        retry_after = response.headers.get("retry-after")
        message = f"{response.status_code} {error or 'error'}: {text}"
        if retry_after:
            message += f" (retry in {retry_after} s)"
        if response.status_code in _HINTS:
            message += f"; {_HINTS[response.status_code]}"
        return cls(message, status=response.status_code, error=error, retry_after=retry_after, fields=fields)


class ApiClient:
    def __init__(self, base_url: str, key: str | None, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "reeltrace-cli"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        return ApiError(
            f"cannot reach the reeltrace API at {self.base_url} ({type(exc).__name__}); "
            "is `reeltrace serve` running? Set REELTRACE_API_URL to its address."
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json()

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/v1/requests", json=body)
        return result

    def get_request(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/monitoring/requests/{key}")
        return result

    def stream(
        self,
        *,
        request_id: str,
        last_event_id: str | None = None,
        reconnects: int = 10,
        retry_seconds: float = 1.0,
    ) -> Iterator[SseEvent]:
        """The request's events until the server ends the stream; a dropped
        connection resumes from the last event id, so nothing is missed or repeated.
        """
        parser = SseParser(last_event_id=last_event_id)
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if parser.last_event_id is not None:
                headers["Last-Event-ID"] = parser.last_event_id
            try:
                with self.http.stream(
                    "GET",
                    "/api/v1/monitoring/stream",
                    params={"request_id": request_id},
                    headers=headers,
                    timeout=httpx.Timeout(15.0, read=None),
                ) as response:
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError.from_response(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            failures = 0
                            yield event
                return  # the server ended the stream: the request has finished
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise self._unreachable(exc) from None
                time.sleep(retry_seconds)
