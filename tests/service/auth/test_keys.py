"""API keys: format, hashing, scopes, verification cache and the bootstrap admin key."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from service.auth.keys import (
    KEY_RE,
    KeyVerifier,
    Scope,
    create_key,
    ensure_admin_key,
    generate_key,
    hash_key,
    parse_scopes,
    revoke_key,
)
from service.auth.repository import ApiKeyRepository
from service.errors import DatabaseUnavailable, NotFoundError, ValidationFailed
from service.runtime import Runtime
from service.settings import Settings
from telemetry.logging import redact_text
from tests.support.sql import sql_engine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_match_the_log_redactor() -> None:
    """Generated keys have the rt_ form that the log redactor masks."""
    key = generate_key()
    assert KEY_RE.match(key)
    assert key not in redact_text(f"token {key} used")


def test_hash_is_sha256_hex() -> None:
    """The stored hash is the SHA-256 hex digest, never the key itself."""
    digest = hash_key("rt_example")
    assert len(digest) == 64
    assert "rt_example" not in digest


def test_parse_scopes() -> None:
    """Scopes parse from a comma list; unknown or no scopes are refused by name."""
    assert parse_scopes("read, submit") == [Scope.READ, Scope.SUBMIT]
    with pytest.raises(ValidationFailed, match="unknown scope write"):
        parse_scopes("read,write")
    with pytest.raises(ValidationFailed, match="at least one scope"):
        parse_scopes(" , ")


async def test_only_the_hash_is_stored(runtime: Runtime) -> None:
    """The database holds the key's hash and display prefix, not its secret."""
    issued = await create_key(ApiKeyRepository(runtime.database), "ci", ["read"])
    async with sql_engine(runtime).connect() as conn:
        row = (await conn.execute(text("SELECT prefix, key_hash FROM api_keys"))).one()
    assert row.key_hash == hash_key(issued.key)
    assert row.prefix == issued.key[:11]
    assert issued.key not in (row.prefix, row.key_hash)


async def test_verify_caches_within_the_ttl(runtime: Runtime) -> None:
    """A verified key is trusted for `ttl` seconds; after that a revocation takes effect."""
    repo = ApiKeyRepository(runtime.database)
    issued = await create_key(repo, "ci", ["read", "submit"])
    clock = Clock()
    verifier = KeyVerifier(repo, ttl=10, clock=clock)
    principal = await verifier.verify(issued.key)
    assert principal is not None
    assert principal.allows(Scope.SUBMIT)
    assert not principal.allows(Scope.ADMIN)
    await revoke_key(repo, issued.record.prefix)
    assert await verifier.verify(issued.key) is not None  # still cached
    clock.now += 11
    assert await verifier.verify(issued.key) is None


async def test_admin_allows_everything(runtime: Runtime) -> None:
    """An admin key allows every scope."""
    repo = ApiKeyRepository(runtime.database)
    issued = await create_key(repo, "root", ["admin"])
    principal = await KeyVerifier(repo).verify(issued.key)
    assert principal is not None
    assert all(principal.allows(s) for s in Scope)


async def test_unknown_and_malformed_keys_fail(runtime: Runtime) -> None:
    """Unknown keys and strings that are not keys verify as None."""
    verifier = KeyVerifier(ApiKeyRepository(runtime.database))
    assert await verifier.verify(generate_key()) is None
    assert await verifier.verify("hunter2") is None
    assert await verifier.verify("rt_short") is None


async def test_known_key_survives_a_database_outage(settings: Settings, runtime: Runtime) -> None:
    """A key verified before PostgreSQL went away stays accepted; an unseen key cannot be checked."""
    issued = await create_key(ApiKeyRepository(runtime.database), "ci", ["submit"])
    clock = Clock()
    verifier = KeyVerifier(ApiKeyRepository(runtime.database), ttl=1, clock=clock)
    assert await verifier.verify(issued.key) is not None
    down = Runtime.build(settings, "postgresql://nobody@127.0.0.1:1/none", source_service="test")
    try:
        verifier.repository = ApiKeyRepository(down.database)
        clock.now += 5
        assert await verifier.verify(issued.key) is not None
        with pytest.raises(DatabaseUnavailable):
            await verifier.verify(generate_key())
    finally:
        await down.close()


async def test_revoke_by_id_and_unknown(runtime: Runtime) -> None:
    """A key can be revoked by id; an unknown id or prefix is NotFound."""
    repo = ApiKeyRepository(runtime.database)
    issued = await create_key(repo, "ci", ["read"])
    revoked = await revoke_key(repo, str(issued.record.id))
    assert revoked.revoked_at is not None
    with pytest.raises(NotFoundError):
        await revoke_key(repo, "rt_nothing0")


async def test_bootstrap_admin_key_is_made_once(runtime: Runtime) -> None:
    """Concurrent first starts create exactly one admin key; later starts create none."""
    repo = ApiKeyRepository(runtime.database)
    results = await asyncio.gather(*(ensure_admin_key(repo) for _ in range(4)))
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert made[0].record.scopes == ("admin",)
    assert await ensure_admin_key(repo) is None
    principal = await KeyVerifier(repo).verify(made[0].key)
    assert principal is not None
    assert principal.allows(Scope.ADMIN)


async def test_bootstrap_again_after_the_admin_key_is_revoked(runtime: Runtime) -> None:
    """With every admin key revoked, the next start makes a new one."""
    repo = ApiKeyRepository(runtime.database)
    first = await ensure_admin_key(repo)
    assert first is not None
    await revoke_key(repo, first.record.prefix)
    assert await ensure_admin_key(repo) is not None
