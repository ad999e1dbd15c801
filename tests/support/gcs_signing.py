"""Checking a Cloud Storage V4 signed URL offline, as Cloud Storage would.

gcp-storage-emulator serves signed URLs without checking them, so a test that only
downloads through it proves nothing about the signature. This rebuilds the
canonical request and the string to sign from the URL alone (Google's V4 signing
process, RSA-SHA256 over the string to sign) and verifies the signature against the
public half of the key that is meant to have made it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey


@dataclass(frozen=True)
class SignedUrl:
    """What a verified URL grants: who signed it, from when, for how long."""

    signer: str
    signed_at: datetime
    expires_in: timedelta


def _encode(value: str) -> str:
    # RFC 3986: only unreserved characters stay as they are.
    return quote(value, safe="-_.~")


def string_to_sign(url: str, method: str = "GET") -> tuple[str, dict[str, str]]:
    """The V4 string to sign that `url` stands for, and its query parameters."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256":
        raise AssertionError(f"not a V4 RSA signed URL: {url}")
    signed_headers = params["X-Goog-SignedHeaders"]
    if signed_headers != "host":
        raise AssertionError(f"only the host header is expected to be signed, not {signed_headers!r}")
    query = "&".join(
        sorted(f"{_encode(k)}={_encode(v)}" for k, v in params.items() if k != "X-Goog-Signature")
    )
    canonical_request = "\n".join(
        [method, parts.path, query, f"host:{parts.netloc}\n", signed_headers, "UNSIGNED-PAYLOAD"]
    )
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    text = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            params["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    return text, params


def verify_v4_signed_url(url: str, public_key: RSAPublicKey, method: str = "GET") -> SignedUrl:
    """The URL's grant, if its signature was made by the private half of `public_key`; else
    AssertionError."""
    text, params = string_to_sign(url, method)
    try:
        public_key.verify(
            bytes.fromhex(params["X-Goog-Signature"]), text.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise AssertionError(f"the signature of {url} does not verify against the key") from None
    signed_at = datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return SignedUrl(
        signer=params["X-Goog-Credential"].split("/", 1)[0],
        signed_at=signed_at,
        expires_in=timedelta(seconds=int(params["X-Goog-Expires"])),
    )
