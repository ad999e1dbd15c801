"""The gcs storage backend through the real google-cloud-storage client and gcp-storage-emulator."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from service.backends.base import InvalidBackendRequest, StorageBackend
from service.backends.gcs import GcsStorage, storage_client
from service.errors import ConfigurationError
from service.settings import Settings, load_settings
from tests.support.gcs_signing import verify_v4_signed_url

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256))


def service_account_key(path: Path) -> Path:
    """Write a service-account JSON key with a freshly generated RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "reeltrace-test",
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": "signer@reeltrace-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return path


def public_key_of(key_file: Path | None) -> RSAPublicKey:
    """The public half of a service-account JSON key file."""
    assert key_file is not None
    private = serialization.load_pem_private_key(
        json.loads(key_file.read_text())["private_key"].encode(), None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.public_key()


def test_implements_the_storage_protocol(gcs: GcsStorage) -> None:
    """The gcs backend satisfies the StorageBackend protocol."""
    assert isinstance(gcs, StorageBackend)


def test_prefix_is_per_request_under_the_bucket(gcs: GcsStorage, bucket: str) -> None:
    """A request's prefix is gs://<bucket>/<gcs_prefix>/<request id>/."""
    request_id = uuid.uuid4()
    assert gcs.prefix_for(request_id) == f"gs://{bucket}/requests/{request_id}/"


async def test_put_uploads_the_bytes(gcs: GcsStorage) -> None:
    """An object put under a gs:// URI is stored with its bytes and content type."""
    uri = gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4"
    stored = await gcs.put(uri, VIDEO, "video/mp4")
    assert (stored.uri, stored.size, stored.content_type) == (uri, len(VIDEO), "video/mp4")
    blob = gcs.client.bucket(gcs.bucket).blob(uri.split("/", 3)[3])
    assert blob.download_as_bytes() == VIDEO


async def test_list_returns_only_objects_under_the_prefix(gcs: GcsStorage) -> None:
    """Listing a request's prefix finds its objects, nested ones included, and nothing else."""
    prefix = gcs.prefix_for(uuid.uuid4())
    other = gcs.prefix_for(uuid.uuid4())
    await gcs.put(prefix + "sample_0.mp4", VIDEO, "video/mp4")
    await gcs.put(prefix + "4711/sample_1.mp4", VIDEO[:10], "video/mp4")
    await gcs.put(other + "sample_0.mp4", VIDEO, "video/mp4")
    listed = await gcs.list(prefix)
    assert [(o.uri, o.size, o.content_type) for o in listed] == [
        (prefix + "4711/sample_1.mp4", 10, "video/mp4"),
        (prefix + "sample_0.mp4", len(VIDEO), "video/mp4"),
    ]


async def test_list_of_an_empty_prefix_is_empty(gcs: GcsStorage) -> None:
    """A prefix with no objects lists as empty rather than failing."""
    assert await gcs.list(gcs.prefix_for(uuid.uuid4())) == []


async def test_public_url_downloads_the_object(gcs: GcsStorage, emulator_host: str) -> None:
    """In public mode the URL is the object's public URL, and fetching it returns the bytes."""
    uri = gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4"
    await gcs.put(uri, VIDEO, "video/mp4")
    url = await gcs.url_for(uri)
    assert url == f"{emulator_host}/{uri.removeprefix('gs://')}"
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == VIDEO


async def test_signed_url_is_v4_and_downloads(google_settings: Settings, tmp_path: Path) -> None:
    """In signed mode a V4 URL signed with the configured key, valid for the expiry, fetches the object."""
    settings = google_settings.model_copy(
        update={
            "gcs_url_mode": "signed",
            "signed_url_expiry_seconds": 900,
            "gcs_signing_key_file": service_account_key(tmp_path / "key.json"),
        }
    )
    gcs = GcsStorage.from_settings(settings)
    uri = gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4"
    await gcs.put(uri, VIDEO, "video/mp4")
    url = await gcs.url_for(uri)
    # The emulator serves the object but does not verify the signature: check it here.
    grant = verify_v4_signed_url(url, public_key_of(settings.gcs_signing_key_file))
    assert grant.signer == "signer@reeltrace-test.iam.gserviceaccount.com"
    assert grant.expires_in == timedelta(seconds=900)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == VIDEO
    await gcs.aclose()


async def test_a_changed_signed_url_or_another_key_does_not_verify(
    google_settings: Settings, tmp_path: Path
) -> None:
    """The local check is a real one: another object in the URL, or another key, fails it."""
    key_file = service_account_key(tmp_path / "key.json")
    settings = google_settings.model_copy(update={"gcs_url_mode": "signed", "gcs_signing_key_file": key_file})
    gcs = GcsStorage.from_settings(settings)
    url = await gcs.url_for(gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4")
    await gcs.aclose()
    verify_v4_signed_url(url, public_key_of(key_file))
    with pytest.raises(AssertionError, match="does not verify"):
        verify_v4_signed_url(url.replace("sample_0.mp4", "sample_1.mp4"), public_key_of(key_file))
    with pytest.raises(AssertionError, match="does not verify"):
        verify_v4_signed_url(url, public_key_of(service_account_key(tmp_path / "other.json")))


async def test_signed_urls_last_at_most_seven_days(google_settings: Settings, tmp_path: Path) -> None:
    """REELTRACE_SIGNED_URL_EXPIRY_SECONDS takes 7 days (604800 s), signed into the URL, and refuses
    a second more, naming the variable."""
    key_file = service_account_key(tmp_path / "key.json")
    week = google_settings.model_copy(
        update={
            "gcs_url_mode": "signed",
            "gcs_signing_key_file": key_file,
            "signed_url_expiry_seconds": 604800,
        }
    )
    gcs = GcsStorage.from_settings(week)
    url = await gcs.url_for(gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4")
    await gcs.aclose()
    assert verify_v4_signed_url(url, public_key_of(key_file)).expires_in == timedelta(days=7)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REELTRACE_SIGNED_URL_EXPIRY_SECONDS", "604801")
        with pytest.raises(ConfigurationError, match="Invalid setting REELTRACE_SIGNED_URL_EXPIRY_SECONDS:"):
            load_settings()


def test_signed_mode_without_a_signer_is_refused_at_start(google_settings: Settings) -> None:
    """Signed mode with credentials that cannot sign and no signing account stops the start, naming the settings."""
    with pytest.raises(ConfigurationError, match="REELTRACE_GCS_SIGNING_KEY_FILE"):
        GcsStorage.from_settings(google_settings.model_copy(update={"gcs_url_mode": "signed"}))


async def test_signed_url_without_a_signer_is_an_invalid_request(gcs: GcsStorage) -> None:
    """Signing with credentials that cannot sign fails with a clear, non-retryable error."""
    unsigned = GcsStorage(gcs.client, gcs.bucket, url_mode="signed")
    with pytest.raises(InvalidBackendRequest, match="REELTRACE_GCS_SIGNING_KEY_FILE"):
        await unsigned.url_for(gcs.prefix_for(uuid.uuid4()) + "sample_0.mp4")


async def test_non_gcs_uri_is_refused(gcs: GcsStorage) -> None:
    """A URI that is not gs:// is an invalid request, not a library error."""
    with pytest.raises(InvalidBackendRequest, match="not a Cloud Storage URI"):
        await gcs.put("local://requests/x/sample_0.mp4", VIDEO, "video/mp4")


async def test_missing_bucket_maps_to_invalid_request(gcs: GcsStorage) -> None:
    """An upload into a bucket that does not exist raises InvalidBackendRequest with the 404."""
    with pytest.raises(InvalidBackendRequest) as caught:
        await gcs.put(f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/x.mp4", VIDEO, "video/mp4")
    assert caught.value.code == 404
    assert caught.value.retryable is False


def test_unreadable_signing_key_is_a_configuration_error(google_settings: Settings, tmp_path: Path) -> None:
    """A signing key file that cannot be read stops the start with a message naming the variable."""
    settings = google_settings.model_copy(update={"gcs_signing_key_file": tmp_path / "missing.json"})
    with pytest.raises(ConfigurationError, match="REELTRACE_GCS_SIGNING_KEY_FILE"):
        GcsStorage.from_settings(settings)


def test_storage_client_uses_the_emulator(google_settings: Settings, emulator_host: str) -> None:
    """With STORAGE_EMULATOR_HOST set, the client talks to the emulator."""
    client = storage_client(google_settings)
    assert client.api_endpoint == emulator_host
    client.close()


async def test_adc_service_account_key_signs_without_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the client's own credentials hold a private key, signed URLs are signed with them, offline."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    adc = service_account_key(tmp_path / "adc.json")
    key = service_account.Credentials.from_service_account_file(str(adc))
    client = storage.Client(project="reeltrace-test", credentials=key)
    gcs = GcsStorage(client, "reeltrace-media", url_mode="signed", expiry_seconds=60)
    url = await gcs.url_for("gs://reeltrace-media/requests/r1/sample_0.mp4")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "storage.googleapis.com",
        "/reeltrace-media/requests/r1/sample_0.mp4",
    )
    assert (
        verify_v4_signed_url(url, public_key_of(adc)).signer
        == "signer@reeltrace-test.iam.gserviceaccount.com"
    )
    await gcs.aclose()


async def test_public_url_on_real_gcs_is_storage_googleapis_com(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the emulator, public URLs are https://storage.googleapis.com/<bucket>/<object>."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    client = storage.Client(project="reeltrace-test", credentials=AnonymousCredentials())
    gcs = GcsStorage(client, "reeltrace-media", url_mode="public")
    url = await gcs.url_for("gs://reeltrace-media/requests/r1/sample 0.mp4")
    assert url == "https://storage.googleapis.com/reeltrace-media/requests/r1/sample%200.mp4"
    await gcs.aclose()
