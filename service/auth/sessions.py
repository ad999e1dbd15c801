"""Browser sessions: an API key with the `read` scope, exchanged for a signed cookie.

The page's `EventSource` cannot send an `Authorization` header, and a key in a URL
ends up in logs and history; so the browser sends its key once and gets back an
HttpOnly, `SameSite=Strict` cookie instead. The cookie holds the SHA-256 hash of the
key (never the key) and its issue time, signed with a secret kept in the data
directory (itsdangerous). Each use checks the hash through the same verifier and
cache as bearer keys, so revoking the key ends its sessions within
`REELTRACE_API_KEY_CACHE_SECONDS`; past `SESSION_SECONDS` the signature is refused.

A session grants `read` only, whatever the key's other scopes: a cookie is sent by
the browser on its own, and it must never be able to submit or administer.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from service.auth.keys import KeyVerifier, Principal, Scope, hash_key

COOKIE_NAME = "reeltrace_session"
SESSION_SECONDS = 12 * 3600
SECRET_FILE = "session_secret"  # noqa: S105  # a file name, not a secret
# Named for where this module once lived: a new salt would end every session signed before.
_SALT = "reeltrace.web.session"
READ_ONLY = frozenset({Scope.READ})


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing secret, generated once and kept (0600) in the data dir so every
    process of that directory, and a restart, accept the same cookies."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process of this data dir wrote it first: use theirs.
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True, slots=True)
class SessionSigner:
    """Makes and checks session cookie values."""

    secret: bytes
    max_age: int = SESSION_SECONDS

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=_SALT)

    def issue(self, key: str) -> str:
        return self._serializer().dumps({"k": hash_key(key)})

    def digest(self, value: str) -> str | None:
        """The key hash a cookie value carries; None if forged, altered or expired."""
        try:
            payload = self._serializer().loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        digest = payload.get("k") if isinstance(payload, dict) else None
        return digest if isinstance(digest, str) else None


def set_cookie(response: Response, signer: SessionSigner, key: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE_NAME,
        signer.issue(key),
        max_age=signer.max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


async def cookie_principal(
    request: Request, signer: SessionSigner, verifier: KeyVerifier
) -> Principal | None:
    """The read-only principal of the request's session cookie, or None without a
    valid one (no cookie, a bad signature, an expired one, a revoked or unknown key,
    or a key that lacks `read`)."""
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        return None
    digest = signer.digest(value)
    if digest is None:
        return None
    principal = await verifier.verify_digest(digest)
    if principal is None or not principal.allows(Scope.READ):
        return None
    return Principal(
        name=f"{principal.name} (browser session)",
        scopes=READ_ONLY,
        key_id=principal.key_id,
        prefix=principal.prefix,
    )
