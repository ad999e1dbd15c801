"""Reading Server-Sent Events in tests, with the CLI's parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from service.cli.http_client import SseEvent, SseParser


class EventReader:
    """An open stream: `await next_event()` (or None once the server ends it)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()
        self.comments: list[str] = []
        self._lines = response.aiter_lines()
        self.ended = False

    async def next_event(self, within: float = 5.0) -> SseEvent | None:
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line)
                event = self.parser.feed(line)
                if event is not None:
                    return event
        self.ended = True
        return None

    async def events_until_end(self, within: float = 10.0) -> list[dict[str, Any]]:
        out = []
        async with asyncio.timeout(within):
            while (event := await self.next_event(within)) is not None:
                out.append(event.json())
        return out

    async def next_data(self, within: float = 5.0) -> dict[str, Any]:
        event = await self.next_event(within)
        assert event is not None, "the stream ended"
        assert event.id is not None
        data: dict[str, Any] = json.loads(event.data)
        assert str(data["id"]) == event.id
        return data


@asynccontextmanager
async def open_stream(base_url: str, headers: dict[str, str], **params: Any) -> AsyncIterator[EventReader]:
    extra = {}
    if "last_event_id_header" in params:
        extra["Last-Event-ID"] = str(params.pop("last_event_id_header"))
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10.0, read=None)) as client,
        client.stream(
            "GET", "/api/v1/monitoring/stream", params=params, headers={**headers, **extra}
        ) as response,
    ):
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)
