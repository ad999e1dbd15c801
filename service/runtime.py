"""The assembled service: database, tracker and queries, built from settings.

The API, the worker and the CLI each build one `Runtime` explicitly (nothing is
built at import time) and close it when they stop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from service.cost.prices import load_prices
from service.cost.pricing import Pricing
from service.db import migrate
from service.db.database import Database
from service.db.embedded import stop_embedded
from service.db.server import resolve_database
from service.db.urls import redact
from service.pipeline.definitions import tracked_pipelines
from service.settings import Settings
from service.tracking.journal import Journal
from service.tracking.queries import RequestQueries
from service.tracking.repository import TrackingRepository
from service.tracking.tracker import RequestTracker

log = structlog.get_logger("reeltrace.runtime")


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    database: Database
    tracker: RequestTracker
    queries: RequestQueries
    journal: Journal
    embedded: bool
    embedded_server: Any = None

    @classmethod
    async def start(cls, settings: Settings, *, source_service: str, run_migrations: bool = True) -> Runtime:
        """Resolve the database (starting the embedded one if need be), migrate, connect."""
        url, server = await asyncio.to_thread(resolve_database, settings)
        embedded = server is not None
        if run_migrations:
            await asyncio.to_thread(migrate.upgrade, url)
        log.info(
            "database_ready",
            embedded=embedded,
            database=redact(url),
            data_dir=str(settings.data_dir.resolve()) if embedded else None,
        )
        runtime = cls.build(settings, url, source_service=source_service, embedded=embedded)
        runtime.embedded_server = server
        return runtime

    @classmethod
    def build(cls, settings: Settings, url: str, *, source_service: str, embedded: bool = False) -> Runtime:
        database = Database.from_settings(
            url,
            settings.db_pool_size,
            settings.db_max_overflow,
            application_name=f"reeltrace-{source_service}",
        )
        journal = Journal(settings.journal_path)
        tracker = RequestTracker(
            TrackingRepository(database),
            journal,
            # Tracking knows no pipeline: it is told each one's stage rows and budget.
            pipelines=tracked_pipelines(settings.max_retries, settings.generation_timeout_seconds),
            source_service=source_service,
            pricing=Pricing(load_prices(settings.prices_file), settings.veo_model),
            lease_seconds=settings.lease_seconds,
        )
        queries = RequestQueries(
            database, slow_ms=settings.slow_query_ms, very_slow_ms=settings.very_slow_query_ms
        )
        return cls(settings, url, database, tracker, queries, journal, embedded)

    async def close(self) -> None:
        await self.database.close()
        if self.embedded_server is not None:
            await asyncio.to_thread(stop_embedded, self.embedded_server)
            self.embedded_server = None
