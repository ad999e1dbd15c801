"""Pipeline tests run real workers on the test database: claim quickly."""

from __future__ import annotations

import pytest

from service.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_poll_seconds": 0.02})
