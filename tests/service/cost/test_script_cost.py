"""The lesson script's Gemini call is billed per call (the real client against the Vertex fake)."""

from __future__ import annotations

import uuid

import pytest

from tests.service.api.conftest import Headers, body
from tests.service.backends.conftest import PROJECT, emulator_host, storage_emulator, vertex_fake
from tests.service.cost.conftest import AppFactory
from tests.support.vertex_fake import VertexFake
from tests.support.workers import run_to_end

__all__ = ["emulator_host", "storage_emulator", "vertex_fake"]


async def test_lesson_pays_for_its_script_call(
    admin: Headers, app_with: AppFactory, vertex_fake: VertexFake
) -> None:
    """A lesson with a Gemini script costs its video plus the table's per-call price, each with its event."""
    client, runtime = await app_with(
        script_backend="gemini", google_cloud_project=PROJECT, vertex_base_url=vertex_fake.base_url
    )
    response = await client.post(
        "/api/v1/requests", json=body(pipeline="lesson", topic="the water cycle"), headers=admin
    )
    assert response.status_code == 202, response.text
    rid = uuid.UUID(response.json()["id"])
    await run_to_end(runtime, [rid])
    read = (await client.get(f"/api/v1/monitoring/requests/{rid}", headers=admin)).json()
    assert read["status"] == "completed"
    assert read["cost_usd"] == pytest.approx(8 * 0.10 + 0.0025)
    events = (await client.get(f"/api/v1/monitoring/requests/{rid}/events", headers=admin)).json()
    billed = [(e["stage_name"], e["data"]["model"]) for e in events if e["event_type"] == "cost_recorded"]
    assert billed == [
        ("script_generation", "gemini-2.5-flash"),
        ("video_generation", "veo-3.1-fast-generate-001"),
    ]
