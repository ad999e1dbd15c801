"""Where the CLI's HTTP client calls: REELTRACE_API_URL, else the address `reeltrace serve` listens on."""

from __future__ import annotations

import pytest

from service.cli.http_client import api_url
from service.settings import Settings


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),  # noqa: S104
        ({"host": "::", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "::1"}, "http://[::1]:8000"),
        ({"host": "api.internal", "port": 80}, "http://api.internal:80"),
        ({"host": "0.0.0.0", "api_url": "https://r.example"}, "https://r.example"),  # noqa: S104
    ],
)
def test_api_url_follows_the_serve_settings(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], expected: str
) -> None:
    """REELTRACE_API_URL wins when set; otherwise the serve address, loopback for any-address binds."""
    for name in ("REELTRACE_API_URL", "REELTRACE_HOST", "REELTRACE_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert api_url(Settings(_env_file=None, **fields)) == expected  # type: ignore[arg-type,call-arg]
