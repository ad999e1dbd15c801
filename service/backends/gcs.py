"""Cloud Storage outputs: `gs://<bucket>/<prefix>/<request id>/`, listed and served by URL.

Veo writes a request's videos under its prefix (possibly in a subfolder), so
listing is recursive. URLs are either public (`https://storage.googleapis.com/...`,
for a bucket readable by `allUsers`) or V4 signed with a configured expiry. Signing
uses, in order: the key file `REELTRACE_GCS_SIGNING_KEY_FILE`; the ADC credentials if
they hold a private key; else IAM `signBlob` as `REELTRACE_SIGNING_SERVICE_ACCOUNT`
(or the ADC service account, on GCE / Cloud Run) with an ADC access token, which
needs `roles/iam.serviceAccountTokenCreator` on that account.

With `STORAGE_EMULATOR_HOST` set, google-cloud-storage talks to that emulator
anonymously, and public URLs point at it. The client is blocking, so every call runs
in a worker thread. Library retries are off: the pipeline retries and counts
failures in its circuit breaker.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import credentials as auth_credentials
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from service.backends.base import (
    BackendError,
    InvalidBackendRequest,
    QuotaExceeded,
    StoredObject,
    TransientBackendError,
)
from service.errors import ConfigurationError
from service.sanitize import sanitize_error
from service.settings import Settings

SCHEME = "gs://"
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/name` → (bucket, name); refuses anything else."""
    if not uri.startswith(SCHEME):
        raise InvalidBackendRequest(f"not a Cloud Storage URI: {uri}", code="invalid_uri")
    bucket, _, name = uri.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise InvalidBackendRequest(f"Cloud Storage URI without a bucket: {uri}", code="invalid_uri")
    return bucket, name


def classify_error(exc: BaseException, call: str) -> BackendError:
    """The backend error for a failed Cloud Storage call."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        code = exc.code or 0
        detail = sanitize_error(f"Cloud Storage {call}: HTTP {code}: {exc.message}")
        if code == 429:
            return QuotaExceeded(detail, code=429)
        if code >= 500 or code == 408:
            return TransientBackendError(detail, code=code)
        return InvalidBackendRequest(detail, code=code)
    if isinstance(exc, auth_exceptions.RefreshError):
        detail = sanitize_error(f"Cloud Storage {call}: refreshing Google credentials failed: {exc}")
        if getattr(exc, "retryable", False):
            return TransientBackendError(detail, code="UNAUTHENTICATED")
        return InvalidBackendRequest(detail, code="UNAUTHENTICATED")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return TransientBackendError(
            sanitize_error(f"Cloud Storage {call}: connection failed: {type(exc).__name__}: {exc}"),
            code="UNAVAILABLE",
        )
    return BackendError(
        sanitize_error(f"Cloud Storage {call}: unexpected {type(exc).__name__}: {exc}"), code="UNKNOWN"
    )


def storage_client(settings: Settings) -> storage.Client:
    """A client on ADC (or on the emulator `STORAGE_EMULATOR_HOST` names)."""
    try:
        return storage.Client(project=settings.google_cloud_project)
    except auth_exceptions.DefaultCredentialsError as exc:
        raise ConfigurationError(
            "REELTRACE_STORAGE_BACKEND=gcs found no Google credentials: run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from exc


def load_signing_key(path: Path) -> service_account.Credentials:
    try:
        return service_account.Credentials.from_service_account_file(str(path))  # type: ignore[no-untyped-call,no-any-return]
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"REELTRACE_GCS_SIGNING_KEY_FILE: cannot read a service-account key from {path}: "
            f"{type(exc).__name__}"
        ) from exc


class GcsStorage:
    name = "gcs"

    def __init__(
        self,
        client: storage.Client,
        bucket: str,
        *,
        prefix: str = "requests",
        url_mode: str = "signed",
        expiry_seconds: int = 3600,
        signing_credentials: auth_credentials.Signing | None = None,
        signing_service_account: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url_mode = url_mode
        self.expiry = timedelta(seconds=expiry_seconds)
        self._signing_credentials = signing_credentials
        self._signing_service_account = signing_service_account
        self._refresh_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> GcsStorage:
        if settings.gcs_bucket is None:
            raise ConfigurationError("REELTRACE_STORAGE_BACKEND=gcs needs REELTRACE_GCS_BUCKET")
        key = settings.gcs_signing_key_file
        client = storage_client(settings)
        if settings.gcs_url_mode == "signed" and key is None and settings.signing_service_account is None:
            # Fail at start, not on the first finished request: user credentials
            # (`gcloud auth application-default login`) and anonymous ones cannot sign.
            creds = client._credentials
            if isinstance(creds, AnonymousCredentials | user_credentials.Credentials):
                raise ConfigurationError(
                    "REELTRACE_GCS_URL_MODE=signed needs REELTRACE_GCS_SIGNING_KEY_FILE, service-account "
                    "credentials, or REELTRACE_SIGNING_SERVICE_ACCOUNT (signed through IAM signBlob)"
                )
        return cls(
            client,
            settings.gcs_bucket,
            prefix=settings.gcs_prefix,
            url_mode=settings.gcs_url_mode,
            expiry_seconds=settings.signed_url_expiry_seconds,
            signing_credentials=load_signing_key(key) if key is not None else None,
            signing_service_account=settings.signing_service_account,
        )

    def prefix_for(self, request_id: uuid.UUID) -> str:
        path = f"{self.prefix}/{request_id}/" if self.prefix else f"{request_id}/"
        return f"{SCHEME}{self.bucket}/{path}"

    def _blob(self, uri: str) -> Any:
        bucket, name = split_uri(uri)
        if not name or name.endswith("/"):
            raise InvalidBackendRequest(f"not a Cloud Storage object: {uri}", code="invalid_uri")
        return self.client.bucket(bucket).blob(name)

    async def _run(self, call: str, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            raise classify_error(exc, call) from exc

    # --- writes ------------------------------------------------------------------------
    def _put(self, uri: str, data: bytes, content_type: str) -> StoredObject:
        blob = self._blob(uri)
        # No library retry: an unconditional upload is not idempotent for the library,
        # and the pipeline retries the stage anyway.
        blob.upload_from_string(data, content_type=content_type, retry=None)
        return StoredObject(uri=uri, size=len(data), content_type=content_type)

    async def put(self, uri: str, data: bytes, content_type: str) -> StoredObject:
        result: StoredObject = await self._run("upload", self._put, uri, data, content_type)
        return result

    # --- listing ------------------------------------------------------------------------
    def _list(self, prefix: str) -> list[StoredObject]:
        bucket, name_prefix = split_uri(prefix)
        objects = []
        for blob in self.client.list_blobs(bucket, prefix=name_prefix, retry=None):
            if blob.name.endswith("/"):  # a console-made "folder" placeholder
                continue
            objects.append(
                StoredObject(
                    uri=f"{SCHEME}{bucket}/{blob.name}",
                    size=int(blob.size or 0),
                    content_type=blob.content_type,
                    metadata=dict(blob.metadata or {}),
                )
            )
        return sorted(objects, key=lambda o: o.uri)

    async def list(self, prefix: str) -> list[StoredObject]:
        result: list[StoredObject] = await self._run("list", self._list, prefix)
        return result

    # --- URLs ---------------------------------------------------------------------------
    def _adc_token(self) -> tuple[str | None, str | None]:
        """The ADC access token and service-account email for IAM signBlob."""
        # The client exposes its ADC credentials only as `_credentials`; reusing them
        # avoids a second, possibly different, ADC lookup.
        creds: Any = self.client._credentials
        with self._refresh_lock:
            if not creds.valid:
                creds.refresh(google.auth.transport.requests.Request())
        email = self._signing_service_account or getattr(creds, "service_account_email", None)
        return creds.token, email

    def _signed_url(self, uri: str) -> str:
        blob = self._blob(uri)
        options: dict[str, Any] = {"version": "v4", "expiration": self.expiry, "method": "GET"}
        if self._signing_credentials is not None:
            options["credentials"] = self._signing_credentials
        elif not isinstance(self.client._credentials, auth_credentials.Signing):
            token, email = self._adc_token()
            if not email or email == "default":
                raise InvalidBackendRequest(
                    "signed URLs need REELTRACE_GCS_SIGNING_KEY_FILE, service-account credentials, "
                    "or REELTRACE_SIGNING_SERVICE_ACCOUNT (signed through IAM signBlob)",
                    code="signing_unavailable",
                )
            options.update(service_account_email=email, access_token=token)
        url: str = blob.generate_signed_url(**options)
        return url

    async def url_for(self, uri: str) -> str:
        if self.url_mode == "public":
            url: str = self._blob(uri).public_url
            return url
        signed: str = await self._run("sign URL", self._signed_url, uri)
        return signed

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.close)
