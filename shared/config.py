"""One configuration object, built from environment variables (documented in README.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.envelope import MAX_BATCH_BYTES
from shared.errors import ConfigError

ENVIRONMENTS = ("prod", "dev")
GOOGLE_ID_TOKEN_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
MIB = 1024 * 1024


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _capped(env: Mapping[str, str], name: str, default: int, cap: int) -> int:
    """An integer setting that must stay inside BigQuery's streaming partition window (the sink's)."""
    value = _int(env, name, default)
    if value > cap:
        raise ConfigError(f"{name} must be <= {cap}: the sink cannot load events outside BigQuery's window")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


def setting_lines(path: Path, setting: str) -> list[str]:
    """The lines of a file a setting names, `#` comments and blank lines dropped; ConfigError if unreadable."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: {exc}") from None
    return [s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s]


def _version(env: Mapping[str, str]) -> str:
    if env.get("GATEWAY_VERSION"):
        return env["GATEWAY_VERSION"]
    staged = Path(__file__).resolve().parent / "VERSION"
    return staged.read_text().strip() if staged.exists() else "dev-local"


@dataclass(frozen=True)
class Config:
    """Settings of one deployment (prod or dev) of the gateway."""

    project: str
    environment: str
    version: str
    pubsub_topic: str
    trusted_license_keys_file: Path | None
    other_env_license_keys_file: Path | None
    revoked_licenses_file: Path | None
    private_metadata_allowlist_file: Path | None
    managed_services_file: Path | None
    id_token_audience: str | None
    id_token_certs_url: str
    marketing_tracking_instances_file: Path | None
    events_partition_expiration_days: int
    rejected_partition_expiration_days: int
    allow_unlicensed: bool
    license_expiry_grace_days: int
    license_cache_size: int
    license_cache_ttl_s: int
    max_request_bytes: int
    max_body_bytes: int
    body_timeout_s: float
    body_min_rate: int
    body_grace_s: float
    max_parse_memory: int
    max_auth_header_chars: int
    max_events: int
    max_event_bytes: int
    max_event_depth: int
    max_string_chars: int
    max_future_s: int
    max_age_days: int
    publish_timeout_s: float
    retry_after_s: int
    gzip_level: int
    quota_events_per_s: float
    quota_burst_events: int
    bq_dataset: str
    bq_timeout_s: float
    bq_retry_budget_s: float
    bigquery_emulator_host: str | None
    bigquery_emulator_grpc_host: str | None

    @property
    def topic_path(self) -> str:
        """Fully qualified Pub/Sub topic name."""
        return f"projects/{self.project}/topics/{self.pubsub_topic}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and check every setting; raise ConfigError with a clear message."""
        env = os.environ if env is None else env
        environment = env.get("TELEMETRY_ENV", "").strip()
        if environment not in ENVIRONMENTS:
            raise ConfigError(f"TELEMETRY_ENV must be one of {ENVIRONMENTS}, got {environment!r}")
        allow_unlicensed = _bool(env, "ALLOW_UNLICENSED_INSTANCES", False)
        if allow_unlicensed and environment == "prod":
            raise ConfigError("ALLOW_UNLICENSED_INSTANCES cannot be enabled in prod")
        max_request = _int(env, "MAX_REQUEST_BYTES", 5 * MIB, minimum=1024)
        gzip_level = _int(env, "PUBSUB_GZIP_LEVEL", 1, minimum=0)
        if gzip_level > 3:
            raise ConfigError("PUBSUB_GZIP_LEVEL is an ISA-L level: 0 to 3")
        max_events = _int(env, "MAX_EVENTS_PER_REQUEST", 1000, minimum=1)
        burst = _int(env, "QUOTA_BURST_EVENTS", 20_000, minimum=1)
        if burst < max_events:
            raise ConfigError("QUOTA_BURST_EVENTS must be >= MAX_EVENTS_PER_REQUEST (a full batch must fit the bucket)")
        if max_request > MAX_BATCH_BYTES:
            raise ConfigError(f"MAX_REQUEST_BYTES must stay under Pub/Sub's 10 MB message limit "
                              f"(<= {MAX_BATCH_BYTES} bytes)")
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT", "").strip() or "telemetry-local",
            environment=environment,
            version=_version(env),
            pubsub_topic=env.get("PUBSUB_TOPIC", "").strip() or "telemetry-events",
            trusted_license_keys_file=_path(env, "TRUSTED_LICENSE_KEYS_FILE"),
            other_env_license_keys_file=_path(env, "OTHER_ENV_LICENSE_KEYS_FILE"),
            revoked_licenses_file=_path(env, "REVOKED_LICENSES_FILE"),
            private_metadata_allowlist_file=_path(env, "PRIVATE_METADATA_ALLOWLIST_FILE"),
            managed_services_file=_path(env, "MANAGED_SERVICES_FILE"),
            id_token_audience=env.get("ID_TOKEN_AUDIENCE", "").strip() or None,
            id_token_certs_url=env.get("GOOGLE_ID_TOKEN_CERTS_URL", "").strip() or GOOGLE_ID_TOKEN_CERTS_URL,
            marketing_tracking_instances_file=_path(env, "MARKETING_TRACKING_INSTANCES_FILE"),
            events_partition_expiration_days=_int(env, "EVENTS_PARTITION_EXPIRATION_DAYS", 730, minimum=1),
            rejected_partition_expiration_days=_int(env, "REJECTED_PARTITION_EXPIRATION_DAYS", 30, minimum=1),
            allow_unlicensed=allow_unlicensed,
            license_expiry_grace_days=_int(env, "LICENSE_EXPIRY_GRACE_DAYS", 30, minimum=-1),
            license_cache_size=_int(env, "LICENSE_CACHE_SIZE", 10_000, minimum=1),
            license_cache_ttl_s=_int(env, "LICENSE_CACHE_TTL_SECONDS", 3600, minimum=1),
            max_request_bytes=max_request,
            max_body_bytes=_int(env, "MAX_BODY_BYTES", max_request, minimum=1024),
            body_timeout_s=_float(env, "BODY_READ_TIMEOUT_SECONDS", 10.0),
            body_min_rate=_int(env, "BODY_MIN_BYTES_PER_SECOND", 32 * 1024, minimum=1),
            body_grace_s=_float(env, "BODY_READ_GRACE_SECONDS", 0.5),
            max_parse_memory=_int(env, "MAX_PARSE_MEMORY_BYTES", 128 * MIB, minimum=MIB),
            max_auth_header_chars=_int(env, "MAX_AUTHORIZATION_CHARS", 4096, minimum=256),
            max_events=max_events,
            max_event_bytes=_int(env, "MAX_EVENT_BYTES", 64 * 1024, minimum=256),
            max_event_depth=_int(env, "MAX_EVENT_DEPTH", 32, minimum=2),
            max_string_chars=_int(env, "MAX_STRING_CHARS", 16_384, minimum=64),
            max_future_s=_capped(env, "EVENT_MAX_FUTURE_SECONDS", 3600, 364 * 86400),
            max_age_days=_capped(env, "EVENT_MAX_AGE_DAYS", 365, 5 * 365 - 1),
            publish_timeout_s=_float(env, "PUBLISH_TIMEOUT_SECONDS", 10.0),
            retry_after_s=_int(env, "RETRY_AFTER_SECONDS", 30, minimum=1),
            gzip_level=gzip_level,
            quota_events_per_s=_float(env, "QUOTA_EVENTS_PER_SECOND", 2000.0),
            quota_burst_events=burst,
            bq_dataset=env.get("BQ_DATASET", "").strip() or "telemetry",
            bq_timeout_s=_float(env, "BQ_TIMEOUT_SECONDS", 20.0),
            bq_retry_budget_s=_float(env, "BQ_RETRY_BUDGET_SECONDS", 30.0),
            bigquery_emulator_host=env.get("BIGQUERY_EMULATOR_HOST") or None,
            bigquery_emulator_grpc_host=env.get("BIGQUERY_EMULATOR_GRPC_HOST") or None,
        )
