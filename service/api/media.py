"""`GET /media/...`: the files of the local storage backend.

With `REELTRACE_STORAGE_BACKEND=local`, generated videos live under
`<data dir>/media` and their public URLs point here. Like objects in a public
bucket, they need no key; the path is confined to the media root.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.api.deps import SettingsDep
from service.api.schemas import ErrorBody
from service.backends.base import InvalidBackendRequest
from service.backends.local_storage import SCHEME, LocalStorage
from service.errors import NotFoundError

router = APIRouter(tags=["media"])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {}, "application/json": {}}, "description": "The file."},
    404: {"model": ErrorBody, "description": "No such file (or media is not served by this service)."},
}


@router.get("/media/{path:path}", response_class=FileResponse, responses=_RESPONSES)
async def media(path: str, settings: SettingsDep) -> FileResponse:
    """A stored output (video or metadata) of the local storage backend."""
    if settings.storage_backend != "local":
        raise NotFoundError("media is served by the storage backend, not by this service")
    storage = LocalStorage(settings.data_dir / "media", settings.base_url)
    try:
        file = storage.path_of(SCHEME + path)
        found = file.is_file()
    except (InvalidBackendRequest, ValueError, OSError):
        # A name no file can have (a NUL byte, one too long for the file system) is
        # simply not there: the same answer as a missing file, not a traceback.
        found = False
    if not found:
        raise NotFoundError("no media at that path")
    return FileResponse(file)
