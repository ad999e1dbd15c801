"""A user's request history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.api import responses
from service.api.deps import RuntimeDep, read_access
from service.api.monitoring import Cursor, Limit, Offset
from service.request_states import RequestStatus
from service.tracking.schemas import Page, RequestSummary
from service.video_request import IDENTIFIER

router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=[read_access])


@router.get("/{user_id}/requests", response_model=Page[RequestSummary], responses=responses.READ)
async def user_requests(
    user_id: Annotated[str, Path(min_length=1, max_length=64, pattern=IDENTIFIER)],
    runtime: RuntimeDep,
    status: RequestStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> Page[RequestSummary]:
    """The user's requests, newest first, optionally of one status.

    Page with `limit`/`offset`, or pass the previous page's `next_cursor` as `cursor`
    (stable while new requests arrive).
    """
    return await runtime.queries.user_history(
        user_id, status=status, limit=limit, offset=offset, cursor=cursor
    )
