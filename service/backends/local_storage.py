"""Local-file storage: outputs under `<data dir>/media`, served by the service at `/media`.

Object URIs look like `local://requests/<request id>/sample_0.mp4`; the public URL is
`<public base URL>/media/requests/<request id>/sample_0.mp4`.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import uuid
from pathlib import Path

from service.backends.base import InvalidBackendRequest, StoredObject

SCHEME = "local://"


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, base_url: str, prefix: str = "requests") -> None:
        self.root = root.resolve()
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix.strip("/")

    def prefix_for(self, request_id: uuid.UUID) -> str:
        return f"{SCHEME}{self.prefix}/{request_id}/"

    def path_of(self, uri: str) -> Path:
        """The file behind a `local://` URI; refuses anything outside the media root."""
        if not uri.startswith(SCHEME):
            raise InvalidBackendRequest(f"not a local storage URI: {uri}")
        path = (self.root / uri.removeprefix(SCHEME)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidBackendRequest(f"path escapes the media root: {uri}")
        return path

    def _put(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    async def put(self, uri: str, data: bytes, content_type: str) -> StoredObject:
        path = self.path_of(uri)
        await asyncio.to_thread(self._put, path, data)
        return StoredObject(uri=uri, size=len(data), content_type=content_type)

    def _list(self, prefix: str) -> list[StoredObject]:
        base = self.path_of(prefix)
        if not base.is_dir():
            return []
        objects = []
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")):
            uri = SCHEME + path.relative_to(self.root).as_posix()
            objects.append(StoredObject(uri, path.stat().st_size, mimetypes.guess_type(path.name)[0]))
        return objects

    async def list(self, prefix: str) -> list[StoredObject]:
        return await asyncio.to_thread(self._list, prefix)

    async def url_for(self, uri: str) -> str:
        self.path_of(uri)
        return f"{self.base_url}/media/{uri.removeprefix(SCHEME)}"

    async def aclose(self) -> None:
        return None
