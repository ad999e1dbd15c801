"""Browser sessions: the signed cookie, and what the API lets it do."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from service.auth.keys import hash_key, revoke_key
from service.auth.repository import ApiKeyRepository
from service.auth.sessions import COOKIE_NAME, SessionSigner, load_or_create_secret
from service.runtime import Runtime

KEY = "rt_" + "k" * 43


def test_a_cookie_carries_the_key_hash_not_the_key() -> None:
    """A session value decodes to the key's SHA-256 hash, and the key is nowhere in it."""
    signer = SessionSigner(b"s" * 32)
    value = signer.issue(KEY)
    assert KEY not in value
    assert signer.digest(value) == hash_key(KEY)


def test_an_altered_cookie_is_refused() -> None:
    """A value signed with another secret, or edited, carries nothing."""
    value = SessionSigner(b"a" * 32).issue(KEY)
    assert SessionSigner(b"b" * 32).digest(value) is None
    assert SessionSigner(b"a" * 32).digest(value[:-2] + "xx") is None


def test_an_expired_cookie_is_refused() -> None:
    """A value older than the session's lifetime carries nothing."""
    value = SessionSigner(b"a" * 32).issue(KEY)
    assert SessionSigner(b"a" * 32, max_age=-1).digest(value) is None


def test_the_signing_secret_is_made_once_and_private(tmp_path: Path) -> None:
    """The secret is generated once per data dir (kept 0600) and read back unchanged."""
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "session_secret").stat().st_mode) == 0o600


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/monitoring/login", data={"api_key": key, "next": "/monitoring"})


async def test_a_session_reads_the_api_and_its_stream(
    client: httpx.AsyncClient, make_key: Callable[..., object]
) -> None:
    """With the cookie alone, the JSON routes answer and the stream authenticates (404 for an unknown request, not 401)."""
    headers = await make_key("read")  # type: ignore[misc]
    key = headers["Authorization"].removeprefix("Bearer ")
    assert (await _sign_in(client, key)).status_code == 303
    assert (await client.get("/api/v1/monitoring/dashboard")).status_code == 200
    assert (await client.get(f"/api/v1/monitoring/stream?request_id={uuid.uuid4()}")).status_code == 404


async def test_a_session_never_submits(client: httpx.AsyncClient, make_key: Callable[..., object]) -> None:
    """A session made from an admin key still grants only `read`: a POST with it is 403."""
    headers = await make_key("admin")  # type: ignore[misc]
    await _sign_in(client, headers["Authorization"].removeprefix("Bearer "))
    response = await client.post("/api/v1/requests", json={"user_id": "u", "prompt": "a fox"})
    assert response.status_code == 403


async def test_revoking_the_key_ends_its_sessions(
    app: FastAPI, client: httpx.AsyncClient, make_key: Callable[..., object], runtime: Runtime
) -> None:
    """Once its key is revoked (and the key cache has expired), the cookie gets 401."""
    app.state.parts.keys.ttl = 0
    headers = await make_key("read", name="to-revoke")  # type: ignore[misc]
    key = headers["Authorization"].removeprefix("Bearer ")
    await _sign_in(client, key)
    assert (await client.get("/api/v1/monitoring/dashboard")).status_code == 200
    await revoke_key(ApiKeyRepository(runtime.database), key[:11])
    assert (await client.get("/api/v1/monitoring/dashboard")).status_code == 401
    assert COOKIE_NAME in client.cookies
