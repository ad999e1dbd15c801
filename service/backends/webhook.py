"""Webhook notifications: the final request JSON POSTed to the client's callback URL.

The body is signed with HMAC-SHA256 under the service's webhook secret and the
signature sent as `X-Reeltrace-Signature: sha256=<hex>`, so the receiver can check
the call came from this service and the body was not altered (`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Reeltrace-Signature"
DELIVERY_HEADER = "X-Reeltrace-Delivery"
EVENT_HEADER = "X-Reeltrace-Event"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if `header` is the signature of `body` under `secret` (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, or one generated once and kept (0600) in the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / "webhook_secret"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self, secret: bytes, *, timeout_seconds: float = 10.0, client: httpx.AsyncClient | None = None
    ):
        self.secret = secret
        self.client = client or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def send(
        self, url: str, event: str, payload: dict[str, Any], *, delivery_id: str | None = None
    ) -> int:
        """POST the payload; raises httpx.HTTPStatusError on a non-2xx answer.

        Retries of one notification pass the same `delivery_id`, so the receiver can
        tell a redelivery from a new event.
        """
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "reeltrace-webhook/1",
            SIGNATURE_HEADER: sign(self.secret, body),
            DELIVERY_HEADER: delivery_id or str(uuid.uuid4()),
            EVENT_HEADER: event,
        }
        response = await self.client.post(url, content=body, headers=headers)
        response.raise_for_status()
        return response.status_code

    async def aclose(self) -> None:
        await self.client.aclose()
