"""Building the configured backends from settings."""

from __future__ import annotations

from dataclasses import dataclass

from service.backends.base import GenerationBackend, RetrievalBackend, ScriptBackend, StorageBackend
from service.backends.local_storage import LocalStorage
from service.backends.simulated_content import SimulatedRetrieval, SimulatedScript
from service.backends.simulated_generation import SimulatedGeneration
from service.backends.simulation import SimulationProfile
from service.errors import ConfigurationError
from service.settings import Settings


@dataclass
class Backends:
    generation: GenerationBackend
    storage: StorageBackend
    retrieval: RetrievalBackend
    script: ScriptBackend

    async def aclose(self) -> None:
        await self.generation.aclose()
        await self.storage.aclose()


def build_storage(settings: Settings) -> StorageBackend:
    if settings.storage_backend == "local":
        return LocalStorage(settings.data_dir / "media", settings.base_url)
    raise ConfigurationError(f"REELTRACE_STORAGE_BACKEND={settings.storage_backend} is not available")


def build_generation(settings: Settings, storage: StorageBackend) -> GenerationBackend:
    if settings.generation_backend == "simulated":
        return SimulatedGeneration(
            settings.data_dir / "sim" / "operations.sqlite3",
            storage,
            SimulationProfile.from_settings(settings),
            model=settings.veo_model,
        )
    raise ConfigurationError(f"REELTRACE_GENERATION_BACKEND={settings.generation_backend} is not available")


def build_script(settings: Settings) -> ScriptBackend:
    if settings.script_backend == "simulated":
        return SimulatedScript(SimulationProfile.from_settings(settings))
    raise ConfigurationError(f"REELTRACE_SCRIPT_BACKEND={settings.script_backend} is not available")


def build_backends(settings: Settings) -> Backends:
    storage = build_storage(settings)
    return Backends(
        generation=build_generation(settings, storage),
        storage=storage,
        retrieval=SimulatedRetrieval(SimulationProfile.from_settings(settings)),
        script=build_script(settings),
    )
