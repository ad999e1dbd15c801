"""`GET /media/...`: the files of the local storage backend.

With `REELTRACE_STORAGE_BACKEND=local`, generated videos live under
`<data dir>/media` and their public URLs point here. Like objects in a public
bucket, they need no key; the path is confined to the media root.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from service.backends.base import InvalidBackendRequest
from service.backends.local_storage import SCHEME, LocalStorage
from service.errors import NotFoundError
from service.settings import Settings

router = APIRouter(tags=["media"])


@router.get("/media/{path:path}", response_class=FileResponse)
async def media(path: str, request: Request) -> FileResponse:
    """A stored output (video or metadata) of the local storage backend."""
    settings: Settings = request.app.state.settings
    if settings.storage_backend != "local":
        raise NotFoundError("media is served by the storage backend, not by this service")
    storage = LocalStorage(settings.data_dir / "media", settings.base_url)
    try:
        file = storage.path_of(SCHEME + path)
    except InvalidBackendRequest:
        raise NotFoundError(f"no media at {path}") from None
    if not file.is_file():
        raise NotFoundError(f"no media at {path}")
    return FileResponse(file)
