"""The simulated generation backend: Veo's operation model without Google.

Operation names have Veo's format
(`projects/sim/locations/local/publishers/google/models/<model>/operations/<uuid>`).
Jobs are kept in a SQLite file under the data directory, so a restarted worker (or
another worker process on the same machine) resumes polling an operation by name.
Outcomes are drawn when a job starts: success after the configured latency, an
operation error, RAI filtering, or never finishing (to exercise the timeout); a quota
error is raised by `start` itself, as Vertex answers 429 to the start call.
On success the backend writes placeholder MP4s under the request's output prefix
through the storage backend, as Veo writes to `storageUri`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from service.backends.base import (
    GeneratedVideo,
    GenerationRequest,
    InvalidBackendRequest,
    OperationStatus,
    QuotaExceeded,
    StorageBackend,
)
from service.backends.simulation_profile import SimulationProfile

# A minimal MP4: an `ftyp` box and an empty `mdat`. Enough for a download to be a
# recognisable video file; the simulated backend does not render pictures.
PLACEHOLDER_MP4 = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free" + b"\x00\x00\x00\x08mdat"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    name TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    output_prefix TEXT NOT NULL,
    sample_count INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0
)
"""


class SimulatedGeneration:
    name = "simulated"
    provider = "simulated"

    def __init__(
        self,
        state_path: Path,
        storage: StorageBackend,
        profile: SimulationProfile,
        *,
        model: str = "veo-3.1-fast-generate-001",
    ) -> None:
        self.state_path = state_path
        self.storage = storage
        self.profile = profile
        self.model = model
        self._lock = threading.Lock()
        state_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(state_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def _start(self, request: GenerationRequest) -> str:
        with self._lock:
            if request.idempotency_key:
                row = self._db.execute(
                    "SELECT name FROM operations WHERE idempotency_key = ?", (request.idempotency_key,)
                ).fetchone()
                if row:
                    return str(row[0])
            rng = self.profile.rng(request.idempotency_key or str(uuid.uuid4()))
            if rng.random() < self.profile.quota_error_rate:
                raise QuotaExceeded(
                    "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model",
                    code=429,
                )
            roll = rng.random()
            p = self.profile
            if roll < p.failure_rate:
                outcome = "failed"
            elif roll < p.failure_rate + p.timeout_rate:
                outcome = "never"
            elif roll < p.failure_rate + p.timeout_rate + p.filter_rate:
                outcome = "filtered"
            else:
                outcome = "succeeded"
            now = time.time()
            model_path = f"projects/sim/locations/local/publishers/google/models/{self.model}"
            name = f"{model_path}/operations/{uuid.uuid4()}"
            self._db.execute(
                "INSERT INTO operations (name, request_id, idempotency_key, output_prefix, sample_count,"
                " outcome, created_at, ready_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    str(request.request_id),
                    request.idempotency_key,
                    request.output_prefix,
                    request.sample_count,
                    outcome,
                    now,
                    now + self.profile.latency(rng),
                ),
            )
            return name

    async def start(self, request: GenerationRequest) -> str:
        if not request.prompt.strip():
            raise InvalidBackendRequest("prompt is empty", code=400)
        return await asyncio.to_thread(self._start, request)

    def _load(self, operation_name: str) -> tuple[str, str, int, float]:
        with self._lock:
            row = self._db.execute(
                "UPDATE operations SET polls = polls + 1 WHERE name = ?"
                " RETURNING outcome, output_prefix, sample_count, ready_at",
                (operation_name,),
            ).fetchone()
        if row is None:
            raise InvalidBackendRequest(f"operation {operation_name} not found", code=404)
        return str(row[0]), str(row[1]), int(row[2]), float(row[3])

    async def poll(self, operation_name: str) -> OperationStatus:
        outcome, prefix, samples, ready_at = await asyncio.to_thread(self._load, operation_name)
        if outcome == "never" or time.time() < ready_at:
            return OperationStatus.running()
        if outcome == "failed":
            return OperationStatus.failed(13, "simulated generation failure: internal error in the model")
        if outcome == "filtered":
            return OperationStatus.filtered(["simulated: prompt blocked by the safety filter"], samples)
        videos = []
        for i in range(samples):
            uri = f"{prefix}sample_{i}.mp4"
            # Idempotent: a re-poll after a crash rewrites the same bytes.
            await self.storage.put(uri, PLACEHOLDER_MP4, "video/mp4")
            videos.append(GeneratedVideo(uri=uri))
        return OperationStatus.succeeded(videos)

    def operations_for(self, request_id: uuid.UUID) -> list[str]:
        """Names of the operations started for a request (for operators and tests)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM operations WHERE request_id = ? ORDER BY created_at", (str(request_id),)
            ).fetchall()
        return [str(r[0]) for r in rows]

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
