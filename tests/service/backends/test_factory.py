"""Building the Google backends from settings, and keeping the embedded default free of them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from service.backends.corpus_retrieval import PostgresRetrieval
from service.backends.factory import build_backends, build_generation, build_script, build_storage
from service.backends.gcs import GcsStorage
from service.backends.gemini_script import GeminiScript
from service.backends.local_storage import LocalStorage
from service.backends.simulated_lesson import SimulatedRetrieval
from service.backends.vertex import VertexGeneration
from service.backends.vertex_embeddings import VertexEmbeddings
from service.errors import ConfigurationError
from service.settings import Settings


async def test_builds_the_google_backends(google_settings: Settings) -> None:
    """generation=vertex, storage=gcs, script=gemini and embeddings=vertex build the Google backends."""
    settings = google_settings.model_copy(update={"embeddings_backend": "vertex"})
    backends = build_backends(settings, create_async_engine("postgresql+psycopg://localhost/unused"))
    try:
        assert isinstance(backends.storage, GcsStorage)
        assert isinstance(backends.generation, VertexGeneration)
        assert isinstance(backends.script, GeminiScript)
        assert isinstance(backends.embeddings, VertexEmbeddings)
    finally:
        await backends.aclose()


def test_postgres_retrieval_needs_the_database(tmp_path: Path) -> None:
    """The default retrieval, built without a database to search, is refused naming the setting."""
    with pytest.raises(ConfigurationError, match="REELTRACE_RETRIEVAL_BACKEND=postgres"):
        build_backends(Settings(data_dir=tmp_path))


def test_simulated_retrieval_only_when_chosen(tmp_path: Path) -> None:
    """Retrieval is the corpus in PostgreSQL by default; the simulated one only when set explicitly."""
    engine = create_async_engine("postgresql+psycopg://localhost/unused")
    assert isinstance(build_backends(Settings(data_dir=tmp_path), engine).retrieval, PostgresRetrieval)
    chosen = Settings(data_dir=tmp_path, retrieval_backend="simulated")
    assert isinstance(build_backends(chosen, engine).retrieval, SimulatedRetrieval)


def test_vertex_needs_gcs_storage(google_settings: Settings, tmp_path: Path) -> None:
    """Vertex generation with local storage is refused at start: Veo writes only to Cloud Storage."""
    storage = LocalStorage(tmp_path, "http://127.0.0.1:8000")
    with pytest.raises(ConfigurationError, match="REELTRACE_STORAGE_BACKEND=gcs"):
        build_generation(google_settings, storage)


def test_gemini_needs_a_project(google_settings: Settings) -> None:
    """The Gemini script backend without GOOGLE_CLOUD_PROJECT is refused with the variable's name."""
    settings = google_settings.model_copy(update={"google_cloud_project": None})
    with pytest.raises(ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
        build_script(settings)


def test_gcs_storage_targets_the_configured_bucket(google_settings: Settings, bucket: str) -> None:
    """The built gcs storage writes under the configured bucket and prefix."""
    storage = build_storage(google_settings)
    assert isinstance(storage, GcsStorage)
    assert storage.prefix_for(uuid.UUID(int=1)).startswith(f"gs://{bucket}/requests/")


def test_embedded_default_does_not_import_google_libraries(tmp_path: Path) -> None:
    """Building the default backends imports neither google-genai nor google-cloud-storage."""
    code = (
        "import sys\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "from service.backends.factory import build_backends\n"
        "from service.settings import Settings\n"
        "engine = create_async_engine('postgresql+psycopg://localhost/unused')\n"
        f"build_backends(Settings(data_dir={str(tmp_path)!r}), engine)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('google.genai', 'google.cloud.storage')))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
