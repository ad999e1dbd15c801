"""Local storage outputs are downloadable from /media, and only they."""

from __future__ import annotations

import uuid

import httpx

from service.backends.local_storage import LocalStorage
from service.settings import Settings


async def test_stored_video_downloads_without_a_key(client: httpx.AsyncClient, settings: Settings) -> None:
    """A local output's public URL serves its bytes with a video content type, no key needed."""
    storage = LocalStorage(settings.data_dir / "media", settings.base_url)
    uri = f"{storage.prefix_for(uuid.uuid4())}sample_0.mp4"
    await storage.put(uri, b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    url = await storage.url_for(uri)
    response = await client.get(url.removeprefix(settings.base_url))
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.content == b"\x00\x00\x00\x18ftypmp42"


async def test_paths_outside_the_media_root_are_not_found(client: httpx.AsyncClient) -> None:
    """Traversal out of the media directory answers 404 in the usual error shape."""
    response = await client.get("/media/requests/..%2F..%2F..%2Fjournal/tracking.jsonl")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert (await client.get("/media/requests/nope/sample_0.mp4")).status_code == 404


async def test_names_no_file_can_have_are_not_found(client: httpx.AsyncClient) -> None:
    """A NUL byte or a name too long for the file system answers 404, not a 500 with a traceback."""
    for path in ("/media/requests/%00", "/media/requests/a%00b/sample_0.mp4", "/media/" + "x" * 5000):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
