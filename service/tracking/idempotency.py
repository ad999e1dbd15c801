"""Idempotent submissions: a repeated `request_id` must repeat the request it named.

A client that retries a submission sends the same body again and gets the original
request back. The same id with other values is a client bug (a key reused for a new
request), which is answered with the fields that differ, as payment APIs do, instead
of silently answering with a request the client did not ask for. The comparison runs
on the stored row read back after the create function returned it as existing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.tracking.requests import NewRequest
from service.tracking.schemas import RequestRead

# The request's own columns a submission sets, by their API names.
COMPARED_COLUMNS = (
    "user_id",
    "guild_id",
    "channel_id",
    "pipeline",
    "prompt",
    "duration_seconds",
    "aspect_ratio",
    "resolution",
    "generate_audio",
)


def differing_fields(new: NewRequest, existing: RequestRead, parameter_names: Iterable[str]) -> list[str]:
    """The submission's fields whose values differ from the stored request's, in API order.

    `parameter_names` are the optional fields kept in the `parameters` column; one
    absent on both sides is equal, one sent on one side only differs.
    """
    differing = [name for name in COMPARED_COLUMNS if getattr(new, name) != getattr(existing, name)]
    stored: dict[str, Any] = existing.parameters or {}
    differing += [name for name in parameter_names if new.parameters.get(name) != stored.get(name)]
    return differing
