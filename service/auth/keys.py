"""API keys and the scopes they grant.

A key looks like `rt_<43 url-safe characters>` (256 random bits); only its SHA-256
hash is stored, and its first characters (`rt_` + 8) are kept as a display prefix
to name it in `reeltrace keys list` and `revoke`. A plain hash suffices because the
secret is random and long: there is nothing to guess from a dictionary.

Verification sits on the hot path of every API call, so verified keys are cached
in-process by hash (never the plaintext) for `ttl` seconds. A revocation therefore
reaches other processes within `ttl`. While PostgreSQL is unreachable a key that
was verified before stays accepted, so submissions can still degrade gracefully.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from service.auth.repository import ApiKeyRepository, KeyRecord
from service.errors import DatabaseUnavailable, NotFoundError, ValidationFailed

log = structlog.get_logger("reeltrace.auth")

KEY_PREFIX = "rt_"
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + 8
# The log redactor masks `rt_[A-Za-z0-9_-]{16,}`; every key must match it.
KEY_RE = re.compile(r"^rt_[A-Za-z0-9_-]{16,128}$")


class Scope(StrEnum):
    SUBMIT = "submit"
    READ = "read"
    ADMIN = "admin"


def parse_scopes(text: str | Iterable[str]) -> list[Scope]:
    """`read,submit` (or an iterable of names) as scopes; an unknown name raises ValidationFailed."""
    names = text.split(",") if isinstance(text, str) else list(text)
    cleaned = [n.strip().lower() for n in names if n.strip()]
    known = {s.value for s in Scope}
    unknown = sorted(set(cleaned) - known)
    if unknown:
        raise ValidationFailed(
            f"unknown scope {', '.join(unknown)}; scopes are {', '.join(sorted(known))}", field="scopes"
        )
    if not cleaned:
        raise ValidationFailed("at least one scope is needed (submit, read, admin)", field="scopes")
    return sorted({Scope(n) for n in cleaned})


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_CHARS]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's identity and scopes. `admin` implies every scope."""

    name: str
    scopes: frozenset[Scope]
    key_id: uuid.UUID | None = None
    prefix: str | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @classmethod
    def from_record(cls, record: KeyRecord) -> Principal:
        return cls(
            name=record.name,
            scopes=frozenset(Scope(s) for s in record.scopes),
            key_id=record.id,
            prefix=record.prefix,
        )


# Used when REELTRACE_API_KEYS_REQUIRED=false (a local demo stack only).
OPEN_ACCESS = Principal(name="open access (API keys not required)", scopes=frozenset({Scope.ADMIN}))


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly created key: the only time its plaintext exists."""

    record: KeyRecord
    key: str


class KeyVerifier:
    """Checks bearer keys against the database, with a small TTL cache of hashes."""

    def __init__(
        self,
        repository: ApiKeyRepository,
        *,
        ttl: float = 10.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    async def verify(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown, revoked or malformed key."""
        if not KEY_RE.match(key):
            return None
        return await self.verify_digest(hash_key(key))

    async def verify_digest(self, digest: str) -> Principal | None:
        """The principal of the key whose SHA-256 hash is `digest` (a browser session
        holds the hash, never the key), through the same cache as `verify`."""
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            record = await self.repository.touch(digest)
        except DatabaseUnavailable:
            if cached is not None:
                log.warning("api_key_check_stale", key_prefix=cached[1].prefix, reason="database unreachable")
                return cached[1]
            raise
        if record is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal.from_record(record)
        self._cache[digest] = (now, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return principal


async def create_key(repository: ApiKeyRepository, name: str, scopes: Iterable[str]) -> IssuedKey:
    """Issue a key with `scopes`; the plaintext is returned once and never stored."""
    parsed = parse_scopes(scopes)
    if not name.strip():
        raise ValidationFailed("a key needs a name", field="name")
    key = generate_key()
    record = await repository.insert(
        uuid.uuid4(), name.strip(), display_prefix(key), hash_key(key), [s.value for s in parsed]
    )
    log.info("api_key_created", key_prefix=record.prefix, name=record.name, scopes=list(record.scopes))
    return IssuedKey(record, key)


async def revoke_key(repository: ApiKeyRepository, ident: str) -> KeyRecord:
    """Revoke the key whose id or display prefix is `ident`."""
    matches = await repository.find(ident.strip())
    if not matches:
        raise NotFoundError(f"no API key with id or prefix {ident!r}")
    if len(matches) > 1:
        raise ValidationFailed(f"{len(matches)} keys have prefix {ident!r}; revoke by id", field="ident")
    record = await repository.revoke(matches[0].id)
    log.info("api_key_revoked", key_prefix=record.prefix, name=record.name)
    return record


async def ensure_admin_key(repository: ApiKeyRepository, name: str = "bootstrap admin") -> IssuedKey | None:
    """Create an admin key if no live one exists; None when one already did."""
    key = generate_key()
    record = await repository.insert_admin_if_none(uuid.uuid4(), name, display_prefix(key), hash_key(key))
    if record is None:
        return None
    log.info("api_key_bootstrapped", key_prefix=record.prefix)
    return IssuedKey(record, key)
