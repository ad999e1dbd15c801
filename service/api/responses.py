"""The documented error answers of each kind of route (all in the `ErrorBody` shape)."""

from __future__ import annotations

from typing import Any

from service.api.schemas import ErrorBody

_DESCRIPTIONS = {
    401: "No API key, or an invalid or revoked one.",
    402: "Over a daily or monthly budget; `budget` says which, what was spent, the limit and its reset.",
    403: "The API key lacks the scope this route needs.",
    404: "No such request.",
    409: "The request ID is already used by another user's request.",
    413: "The body is over 64 KiB.",
    415: "The body is not sent as JSON (`Content-Type: application/json`).",
    422: "Invalid input; `detail` lists each field and what is wrong with it.",
    429: "Past the per-user rate limit; retry after `Retry-After` seconds.",
    503: "PostgreSQL is unreachable.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes
    }
    if 429 in codes:
        out[429]["headers"] = {
            "Retry-After": {
                "description": "Seconds until the user may submit again.",
                "schema": {"type": "integer"},
            }
        }
    return out


AUTH = (401, 403)
READ = errors(*AUTH, 422, 503)
READ_ONE = errors(*AUTH, 404, 422, 503)
