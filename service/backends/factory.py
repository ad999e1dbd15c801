"""Building the configured backends from settings."""

from __future__ import annotations

from dataclasses import dataclass

from service.backends.base import GenerationBackend, RetrievalBackend, ScriptBackend, StorageBackend
from service.backends.corpus_retrieval import PostgresRetrieval
from service.backends.local_storage import LocalStorage
from service.backends.simulated_lesson import SimulatedRetrieval, SimulatedScript
from service.backends.simulated_veo import SimulatedGeneration
from service.backends.simulation_profile import SimulationProfile
from service.corpus.embedding import Embedder
from service.corpus.repository import CorpusRepository
from service.db.database import Database
from service.errors import ConfigurationError
from service.settings import Settings


@dataclass
class Backends:
    generation: GenerationBackend
    storage: StorageBackend
    retrieval: RetrievalBackend
    script: ScriptBackend
    embeddings: Embedder | None = None
    """Unset: retrieval ranks by full text alone."""

    async def aclose(self) -> None:
        await self.generation.aclose()
        await self.storage.aclose()
        if self.embeddings is not None:
            await self.embeddings.aclose()
        # The script protocol has no aclose; the Gemini one holds an HTTP client.
        close_script = getattr(self.script, "aclose", None)
        if close_script is not None:
            await close_script()


def build_storage(settings: Settings) -> StorageBackend:
    if settings.storage_backend == "local":
        return LocalStorage(settings.data_dir / "media", settings.base_url)
    if settings.storage_backend == "gcs":
        # Imported here so the embedded default never loads the Google libraries.
        from service.backends.gcs import GcsStorage

        return GcsStorage.from_settings(settings)
    raise ConfigurationError(f"REELTRACE_STORAGE_BACKEND={settings.storage_backend} is not available")


def build_generation(settings: Settings, storage: StorageBackend) -> GenerationBackend:
    if settings.generation_backend == "simulated":
        return SimulatedGeneration(
            settings.data_dir / "sim" / "operations.sqlite3",
            storage,
            SimulationProfile.from_settings(settings),
            model=settings.veo_model,
        )
    if settings.generation_backend == "vertex":
        if storage.name != "gcs":
            raise ConfigurationError(
                "REELTRACE_GENERATION_BACKEND=vertex needs REELTRACE_STORAGE_BACKEND=gcs "
                "(Veo writes its videos to Cloud Storage)"
            )
        from service.backends.vertex import VertexGeneration

        return VertexGeneration.from_settings(settings)
    raise ConfigurationError(f"REELTRACE_GENERATION_BACKEND={settings.generation_backend} is not available")


def build_script(settings: Settings) -> ScriptBackend:
    if settings.script_backend == "simulated":
        return SimulatedScript(SimulationProfile.from_settings(settings))
    if settings.script_backend == "gemini":
        if not settings.google_cloud_project:
            raise ConfigurationError("REELTRACE_SCRIPT_BACKEND=gemini needs GOOGLE_CLOUD_PROJECT")
        from service.backends.gemini_script import GeminiScript

        return GeminiScript.from_settings(settings)
    raise ConfigurationError(f"REELTRACE_SCRIPT_BACKEND={settings.script_backend} is not available")


def build_embeddings(settings: Settings) -> Embedder | None:
    if settings.embeddings_backend == "none":
        return None
    if settings.embeddings_backend == "vertex":
        if not settings.google_cloud_project:
            raise ConfigurationError("REELTRACE_EMBEDDINGS_BACKEND=vertex needs GOOGLE_CLOUD_PROJECT")
        from service.backends.vertex_embeddings import VertexEmbeddings

        return VertexEmbeddings.from_settings(settings)
    raise ConfigurationError(f"REELTRACE_EMBEDDINGS_BACKEND={settings.embeddings_backend} is not available")


def build_retrieval(settings: Settings, database: Database | None) -> RetrievalBackend:
    if settings.retrieval_backend == "simulated":
        return SimulatedRetrieval(SimulationProfile.from_settings(settings))
    if settings.retrieval_backend == "postgres":
        if database is None:
            raise ConfigurationError(
                "REELTRACE_RETRIEVAL_BACKEND=postgres searches the corpus in PostgreSQL: it needs the database"
            )
        return PostgresRetrieval(CorpusRepository(database))
    raise ConfigurationError(f"REELTRACE_RETRIEVAL_BACKEND={settings.retrieval_backend} is not available")


def build_backends(settings: Settings, database: Database | None = None) -> Backends:
    """The configured backends; `database` is where the corpus is searched."""
    storage = build_storage(settings)
    return Backends(
        generation=build_generation(settings, storage),
        storage=storage,
        retrieval=build_retrieval(settings, database),
        script=build_script(settings),
        embeddings=build_embeddings(settings),
    )
