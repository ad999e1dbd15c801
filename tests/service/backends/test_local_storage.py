"""The local storage backend: per-request prefixes, public URLs, confinement to its root, listings."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from service.backends.base import InvalidBackendRequest
from service.backends.local_storage import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", "http://media.test:8000/")


async def test_local_storage_prefix_and_urls(storage: LocalStorage) -> None:
    """Outputs sit under a per-request prefix; their public URL is derived from the base URL."""
    rid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    prefix = storage.prefix_for(rid)
    assert prefix == f"local://requests/{rid}/"
    stored = await storage.put(f"{prefix}sample_0.mp4", b"data", "video/mp4")
    assert stored.size == 4
    assert await storage.url_for(stored.uri) == f"http://media.test:8000/media/requests/{rid}/sample_0.mp4"
    assert storage.path_of(stored.uri) == storage.root / "requests" / str(rid) / "sample_0.mp4"


async def test_local_storage_refuses_paths_outside_its_root(storage: LocalStorage) -> None:
    """A URI that climbs out of the media root, or is not local://, is refused."""
    with pytest.raises(InvalidBackendRequest):
        await storage.put("local://requests/../../escape.txt", b"x", "text/plain")
    with pytest.raises(InvalidBackendRequest):
        await storage.url_for("gs://bucket/object.mp4")


async def test_local_storage_lists_only_finished_files(storage: LocalStorage) -> None:
    """Listing a prefix shows written objects, not half-written temporary files, and nothing else's."""
    rid = uuid.uuid4()
    prefix = storage.prefix_for(rid)
    await storage.put(f"{prefix}b.json", b"{}", "application/json")
    await storage.put(f"{prefix}a.mp4", b"video", "video/mp4")
    await storage.put(f"{storage.prefix_for(uuid.uuid4())}other.mp4", b"x", "video/mp4")
    (storage.path_of(prefix) / ".a.mp4.123.tmp").write_bytes(b"partial")
    listed = await storage.list(prefix)
    assert [(o.uri, o.size) for o in listed] == [(f"{prefix}a.mp4", 5), (f"{prefix}b.json", 2)]
    assert await storage.list(storage.prefix_for(uuid.uuid4())) == []
