"""The google-genai client shared by the Vertex (Veo) and Gemini backends, and its errors.

The client runs in Vertex mode against the `v1` API: `v1beta1`, the SDK's default,
refuses some GA Veo models. Credentials come from Application Default Credentials,
except when `REELTRACE_VERTEX_BASE_URL` is a plain-`http` URL (a local fake or
emulator): a real token is never sent over an unencrypted connection, so a fixed
placeholder token is used there. The SDK never retries here; the pipeline owns
retries and the circuit breaker, so this module only classifies failures.

Importing this module imports google-genai; the factory imports it only when a
Google backend is configured.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials

from service.backends.base import BackendError, InvalidBackendRequest, QuotaExceeded, TransientBackendError
from service.sanitize import sanitize_error
from service.settings import Settings

API_VERSION = "v1"
PROVIDER = "gcp.vertex_ai"

# HTTP statuses worth retrying besides 5xx: 408 is a server-side request timeout.
_RETRYABLE_HTTP = {408}
# Transport failures of the HTTP stacks google-genai may use (httpx is its default).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)
try:  # google-genai prefers httpx2 when it is installed.
    import httpx2  # type: ignore[import-not-found,unused-ignore]

    _TRANSPORT_ERRORS = (*_TRANSPORT_ERRORS, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the environment
    pass


def genai_client(settings: Settings) -> genai.Client:
    """A google-genai client in Vertex mode for the configured project and location."""
    base_url = settings.vertex_base_url
    credentials = None
    if base_url and urlsplit(base_url).scheme == "http":
        credentials = Credentials(token="fake")  # type: ignore[no-untyped-call]  # noqa: S106 - placeholder for a fake
    http_options = types.HttpOptions(
        api_version=API_VERSION,
        base_url=base_url,
        timeout=int(settings.google_request_timeout_seconds * 1000),  # milliseconds
    )
    return genai.Client(
        vertexai=True,
        project=settings.google_cloud_project,
        location=settings.google_cloud_location,
        credentials=credentials,
        http_options=http_options,
    )


def classify_error(exc: BaseException, call: str) -> BackendError:
    """The backend error for a failed google-genai call (`call` names it in the message)."""
    if isinstance(exc, genai_errors.APIError):
        code = exc.code or 0  # an answer without a parseable status is treated as a server error
        detail = sanitize_error(f"{call}: HTTP {code} {exc.status or ''}: {exc.message or exc.details}")
        if code == 429 or exc.status == "RESOURCE_EXHAUSTED":
            return QuotaExceeded(detail, code=429)
        if code >= 500 or code == 0 or code in _RETRYABLE_HTTP:
            return TransientBackendError(detail, code=code)
        return InvalidBackendRequest(detail, code=code)
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return InvalidBackendRequest(
            f"{call}: no Google credentials found; run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS",
            code="UNAUTHENTICATED",
        )
    if isinstance(exc, auth_exceptions.RefreshError):
        detail = sanitize_error(f"{call}: refreshing Google credentials failed: {exc}")
        if getattr(exc, "retryable", False):
            return TransientBackendError(detail, code="UNAUTHENTICATED")
        return InvalidBackendRequest(detail, code="UNAUTHENTICATED")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return TransientBackendError(
            sanitize_error(f"{call}: connection failed: {type(exc).__name__}: {exc}"), code="UNAVAILABLE"
        )
    if isinstance(exc, ValueError):
        # The SDK validates arguments and responses client-side (pydantic errors included).
        return InvalidBackendRequest(sanitize_error(f"{call}: {exc}"), code="INVALID_ARGUMENT")
    return BackendError(sanitize_error(f"{call}: unexpected {type(exc).__name__}: {exc}"), code="UNKNOWN")
