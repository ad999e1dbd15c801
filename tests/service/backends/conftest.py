"""Fixtures for the Google backends: the storage emulator, the Vertex fake, settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from google.cloud import storage

from service.backends.gcs import GcsStorage
from service.settings import Settings
from tests.support.storage_emulator import StorageEmulator
from tests.support.vertex_fake import VertexFake

PROJECT = "reeltrace-test"


@pytest.fixture(scope="session")
def storage_emulator() -> Iterator[StorageEmulator]:
    """One in-memory storage emulator for the session; tests use buckets of their own."""
    with StorageEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator_host(storage_emulator: StorageEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """STORAGE_EMULATOR_HOST set for this test, so google-cloud-storage uses the emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_emulator.host)
    return storage_emulator.host


@pytest.fixture
def bucket(emulator_host: str) -> str:
    """A fresh bucket in the emulator."""
    name = f"reeltrace-{uuid.uuid4().hex[:12]}"
    client = storage.Client()
    client.create_bucket(name)
    client.close()
    return name


@pytest.fixture
def vertex_fake(emulator_host: str) -> Iterator[VertexFake]:
    """The Vertex fake, writing finished videos into the storage emulator as Veo would."""
    with VertexFake(storage_emulator_host=emulator_host) as fake:
        yield fake


@pytest.fixture
def google_settings(vertex_fake: VertexFake, bucket: str, tmp_path: Path) -> Settings:
    """Settings for the vertex, gcs and gemini backends, pointed at the fakes."""
    return Settings(
        data_dir=tmp_path / "data",
        generation_backend="vertex",
        storage_backend="gcs",
        script_backend="gemini",
        google_cloud_project=PROJECT,
        vertex_base_url=vertex_fake.base_url,
        gcs_bucket=bucket,
        gcs_url_mode="public",
    )


@pytest.fixture
async def gcs(google_settings: Settings) -> AsyncIterator[GcsStorage]:
    """The gcs storage backend on the emulator, public URLs."""
    backend = GcsStorage.from_settings(google_settings)
    yield backend
    await backend.aclose()
