"""Service settings, read from the environment (and an optional `.env`).

Only the app factory, the CLI and dependencies build a `Settings`; nothing reads the
environment at import time. Most variables carry the `REELTRACE_` prefix; the few
that the spec or Google's tooling name (`DATABASE_URL`, `REQUEST_RETENTION_DAYS`,
`GOOGLE_CLOUD_*`) are read under those exact names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from platformdirs import user_data_path
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigurationError

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class RateLimit:
    """A parsed `N/period` limit such as `5/minute`."""

    __slots__ = ("limit", "window_seconds")

    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _RATE_RE.match(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError("expected N/second, N/minute, N/hour or N/day with N >= 1, e.g. 5/minute")
        return cls(int(match.group(1)), _RATE_PERIODS[match.group(2)])

    def __repr__(self) -> str:
        return f"RateLimit({self.limit}/{self.window_seconds}s)"


def default_data_dir() -> Path:
    """The user's reeltrace data directory, when REELTRACE_DATA_DIR is unset."""
    return user_data_path("reeltrace", appauthor=False)


class Settings(BaseSettings):
    """Everything reeltrace can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="REELTRACE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- environment and process -------------------------------------------------
    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # One place per user, so every command reaches the same embedded server wherever it
    # is run from (the platform's data directory: ~/.local/share/reeltrace on Linux).
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Unset: text lines on a terminal, JSON lines otherwise (a service manager, a container).
    log_format: Literal["json", "console"] | None = None
    public_base_url: str | None = Field(
        default=None, description="Base URL clients use to reach this service; defaults to host:port."
    )

    # --- PostgreSQL ----------------------------------------------------------------
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "REELTRACE_DATABASE_URL")
    )
    # Runs use at most `db_pool_size` connections at once (the run gate), so they stay
    # on kept connections; the overflow serves bursts of API reads and housekeeping.
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    slow_query_ms: float = Field(default=100.0, gt=0)
    very_slow_query_ms: float = Field(default=500.0, gt=0)

    # --- retention -----------------------------------------------------------------
    request_retention_days: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("REQUEST_RETENTION_DAYS", "REELTRACE_REQUEST_RETENTION_DAYS"),
    )
    cleanup_interval_seconds: float = Field(default=86400.0, gt=0)

    # --- pipeline and workers ------------------------------------------------------
    generation_backend: Literal["simulated", "vertex"] = "simulated"
    storage_backend: Literal["local", "gcs"] = "local"
    generation_timeout_seconds: float = Field(default=300.0, gt=0)
    # A resumed run that finds a generation start recorded as intended but never as
    # started (its run died in between) cannot know whether an operation exists:
    # `retry` starts again (maybe a second, paid generation), `fail` ends the request.
    uncertain_start: Literal["retry", "fail"] = "retry"
    poll_interval_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    retry_max_seconds: float = Field(default=30.0, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)
    worker_concurrency: int = Field(default=1000, ge=1)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    watchdog_interval_seconds: float = Field(default=30.0, gt=0)
    pending_budget_seconds: float = Field(default=3600.0, gt=0)
    webhook_secret: str | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=86400.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)

    # --- simulated backends --------------------------------------------------------
    sim_latency_seconds: float = Field(default=3.0, ge=0)
    sim_jitter_seconds: float = Field(default=1.0, ge=0)
    sim_failure_rate: float = Field(default=0.0, ge=0, le=1)
    sim_timeout_rate: float = Field(default=0.0, ge=0, le=1)
    sim_quota_error_rate: float = Field(default=0.0, ge=0, le=1)
    sim_filter_rate: float = Field(default=0.0, ge=0, le=1)
    sim_seed: int | None = None

    # --- API -----------------------------------------------------------------------
    rate_limit: str = "5/minute"
    # False only for a local demo stack: every route then acts as if an admin key were sent.
    api_keys_required: bool = True
    api_key_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long a verified key is trusted before it is checked again."
    )
    stream_ping_seconds: float = Field(default=15.0, gt=0, description="SSE keep-alive interval.")

    # --- cost and budgets (USD; unset: no limit) -------------------------------------
    prices_file: Path | None = Field(
        default=None, description="A price table (TOML) replacing the one shipped in the package."
    )
    budget_guild_daily_usd: float | None = Field(default=None, ge=0)
    budget_guild_monthly_usd: float | None = Field(default=None, ge=0)
    budget_user_daily_usd: float | None = Field(default=None, ge=0)
    budget_user_monthly_usd: float | None = Field(default=None, ge=0)

    # --- API client (`reeltrace submit`, `reeltrace status`) ------------------------
    # Unset: where `reeltrace serve` listens with these settings (see service.cli.http_client).
    api_url: str | None = None
    api_key: SecretStr | None = None

    # --- telemetry -----------------------------------------------------------------
    jaeger_url: str | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # --- analytics -----------------------------------------------------------------
    export_dir: Path | None = None
    export_interval: float | None = Field(default=None, gt=0, description="seconds between exports")

    # --- Google Cloud --------------------------------------------------------------
    google_cloud_project: str | None = Field(
        default=None, validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT", "REELTRACE_GCP_PROJECT")
    )
    google_cloud_location: str = Field(
        default="us-central1",
        validation_alias=AliasChoices("GOOGLE_CLOUD_LOCATION", "REELTRACE_GCP_LOCATION"),
    )
    veo_model: str = "veo-3.1-fast-generate-001"
    vertex_base_url: str | None = None
    gcs_bucket: str | None = None
    gcs_prefix: str = "requests"
    gcs_url_mode: Literal["public", "signed"] = "signed"
    signed_url_expiry_seconds: int = Field(default=3600, ge=1, le=604800)
    signing_service_account: str | None = None
    gcs_signing_key_file: Path | None = Field(
        default=None,
        description="A service-account JSON key that signs URLs offline (else ADC or IAM signBlob).",
    )
    google_request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Timeout of each HTTP call to Vertex AI."
    )
    script_backend: Literal["simulated", "gemini"] = "simulated"
    gemini_model: str = "gemini-2.5-flash"

    # --- lesson retrieval (the OER corpus) -------------------------------------------
    retrieval_backend: Literal["postgres", "simulated"] = "postgres"
    embeddings_backend: Literal["none", "vertex"] = "none"
    embedding_model: str = "text-embedding-005"

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        RateLimit.parse(value)
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _check_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        lease = info.data.get("lease_seconds")
        if lease is not None and value >= lease:
            # Leases would lapse between renewals: workers would take each other's running
            # requests (and their own), cancelling runs and piling up claims.
            raise ValueError(
                f"{value:g} s must be shorter than REELTRACE_LEASE_SECONDS ({lease:g} s); a third of it is usual"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("postgresql://", "postgresql+psycopg://", "postgres://")
        ):
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("jaeger_url", "public_base_url", "api_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        # These become links and request targets: a typo should stop the start, not
        # surface later as broken links.
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _check_backends(self) -> Settings:
        if self.generation_backend == "vertex" and not self.google_cloud_project:
            raise ValueError("REELTRACE_GENERATION_BACKEND=vertex needs GOOGLE_CLOUD_PROJECT")
        if self.embeddings_backend == "vertex" and not self.google_cloud_project:
            raise ValueError("REELTRACE_EMBEDDINGS_BACKEND=vertex needs GOOGLE_CLOUD_PROJECT")
        if self.storage_backend == "gcs" and not self.gcs_bucket:
            raise ValueError("REELTRACE_STORAGE_BACKEND=gcs needs REELTRACE_GCS_BUCKET")
        if self.env == "production" and self.database_url is None:
            raise ValueError(
                "REELTRACE_ENV=production needs DATABASE_URL (the embedded server is for development)"
            )
        return self

    @property
    def rate(self) -> RateLimit:
        return RateLimit.parse(self.rate_limit)

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal" / "tracking.jsonl"

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def snapshot_dir(self) -> Path:
        return self.export_dir or (self.data_dir / "snapshots")


def env_name(field: str) -> str:
    """The environment variable a settings field is read from.

    A field read under several names (`DATABASE_URL` or `REELTRACE_DATABASE_URL`) is
    reported by its first name whichever was set, by field or by that name: the answer
    is the one set in the environment, as the user typed it.
    """
    names = _NAMES.get(field)
    if names:
        return next((name for name in names if name.upper() in _environ_names()), names[0])
    return f"REELTRACE_{field.upper()}"


# A field read under several names, by its field name and by each of those names ->
# all of its names, in order.
_NAMES: dict[str, tuple[str, ...]] = {
    key: names
    for field, info in Settings.model_fields.items()
    if isinstance(info.validation_alias, AliasChoices)
    for names in [tuple(c for c in info.validation_alias.choices if isinstance(c, str))]
    for key in (field, *names)
}


def _environ_names() -> set[str]:
    return {name.upper() for name in os.environ}


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation error into one that names the variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc") or ()
            name = env_name(str(loc[0])) if loc else "settings"
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise ConfigurationError("Invalid setting " + "; ".join(problems)) from exc
