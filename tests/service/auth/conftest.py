"""Fixtures for the auth tests: the API's (the app over ASGI, keys of each scope), for what a
browser session may call."""

from __future__ import annotations

from tests.service.api.conftest import app, client, make_key  # noqa: F401
