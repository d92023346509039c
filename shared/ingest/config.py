"""The ingest function's settings, each declared once (docs/configuration.md lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.envelope import MAX_BATCH_BYTES
from shared.errors import ConfigError
from shared.settings import MIB, Settings, boolean, integer, ip_address, path, positive, setting, text

GOOGLE_ID_TOKEN_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# BigQuery's streaming window (the sink's) bounds the timestamps ingest may accept.
_WINDOW = "the sink cannot load events outside BigQuery's window"


@dataclass(frozen=True)
class IngestConfig(Settings):
    """Settings of the ingest function of one deployment (prod or dev)."""

    pubsub_topic: str = setting("PUBSUB_TOPIC", "telemetry-events", text, "Topic id for accepted batches.")
    trusted_license_keys_file: Path | None = setting(
        "TRUSTED_LICENSE_KEYS_FILE", None, path, "authorized_keys file of trusted signing keys (prod: unset = "
        "Sourcegraph's production key; dev: required).", deploy_file="trusted-license-keys.pub")
    other_env_license_keys_file: Path | None = setting(
        "OTHER_ENV_LICENSE_KEYS_FILE", None, path, "Keys of the other environment, refused with 403 "
        "`wrong_environment` (dev default: Sourcegraph's production key).", deploy_file="other-env-license-keys.pub")
    revoked_licenses_file: Path | None = setting(
        "REVOKED_LICENSES_FILE", None, path, "Revoked license fingerprints.", deploy_file="revoked-licenses.txt")
    private_metadata_allowlist_file: Path | None = setting(
        "PRIVATE_METADATA_ALLOWLIST_FILE", None, path, "`feature:action` lines (`*` wildcards): only matching "
        "events keep `parameters.privateMetadata` (unset: nothing kept).",
        deploy_file="private-metadata-allowlist.txt")
    managed_services_file: Path | None = setting(
        "MANAGED_SERVICES_FILE", None, path, "`SERVICE_ID SERVICE_ACCOUNT_EMAIL` lines (unset: managed services "
        "refused).", deploy_file="managed-services.txt")
    id_token_audience: str | None = setting(
        "ID_TOKEN_AUDIENCE", None, text, "The `aud` ID tokens must carry (required with MANAGED_SERVICES_FILE; "
        "deploy.sh: the function URL).")
    id_token_certs_url: str = setting(
        "GOOGLE_ID_TOKEN_CERTS_URL", GOOGLE_ID_TOKEN_CERTS_URL, text, "Where Google's ID token signing "
        "certificates are fetched (tests serve their own).")
    marketing_tracking_instances_file: Path | None = setting(
        "MARKETING_TRACKING_INSTANCES_FILE", None, path, "`INSTANCE_ID [LICENSE_FINGERPRINT]` lines: these "
        "instances keep `marketingTracking` (unset: nothing kept).", deploy_file="marketing-tracking-instances.txt")
    allow_unlicensed: bool = setting(
        "ALLOW_UNLICENSED_INSTANCES", False, boolean, "Accept `unlicensedInstance` callers (dev only).")
    license_expiry_grace_days: int = setting(
        "LICENSE_EXPIRY_GRACE_DAYS", 30, integer(minimum=-1), "Days after expiry still accepted; -1: never refuse.")
    license_cache_size: int = setting("LICENSE_CACHE_SIZE", 10_000, integer(minimum=1), "Verified licenses cached.")
    license_cache_ttl_s: int = setting(
        "LICENSE_CACHE_TTL_SECONDS", 3600, integer(minimum=1), "How long a verification is cached.")
    max_request_bytes: int = setting(
        "MAX_REQUEST_BYTES", 5 * MIB, integer(minimum=1024, maximum=MAX_BATCH_BYTES,
                                              why="one batch must fit one Pub/Sub message (10 MB)"),
        "Body size after decompression.")
    max_body_bytes: int | None = setting(
        "MAX_BODY_BYTES", None, integer(minimum=1024), "Body size on the wire (default: MAX_REQUEST_BYTES).")
    body_timeout_s: float = setting(
        "BODY_READ_TIMEOUT_SECONDS", 10.0, positive, "Longest a body may take to arrive (then 408 `body_timeout`).")
    body_min_rate: int = setting(
        "BODY_MIN_BYTES_PER_SECOND", 32 * 1024, integer(minimum=1), "A body's deadline is the grace plus its "
        "length at this rate (at most the timeout).")
    body_grace_s: float = setting("BODY_READ_GRACE_SECONDS", 0.5, positive, "See BODY_MIN_BYTES_PER_SECOND.")
    max_parse_memory: int = setting(
        "MAX_PARSE_MEMORY_BYTES", 128 * MIB, integer(minimum=MIB), "Bytes of parsed bodies one instance holds at "
        "once, costed before parsing (413 `body_too_complex`, 503 `server_busy`).")
    max_auth_header_chars: int = setting(
        "MAX_AUTHORIZATION_CHARS", 4096, integer(minimum=256), "Longer Authorization headers get 401.")
    max_events: int = setting("MAX_EVENTS_PER_REQUEST", 1000, integer(minimum=1), "Events per request.")
    max_event_bytes: int = setting("MAX_EVENT_BYTES", 64 * 1024, integer(minimum=256),
                                   "One event's size as published: compact JSON, or its protobuf bytes.")
    max_event_depth: int = setting("MAX_EVENT_DEPTH", 32, integer(minimum=2), "Nesting depth in an event.")
    max_string_chars: int = setting("MAX_STRING_CHARS", 16_384, integer(minimum=64), "String length in an event.")
    max_future_s: int = setting(
        "EVENT_MAX_FUTURE_SECONDS", 3600, integer(maximum=364 * 86400, why=_WINDOW), "Newest accepted timestamp.")
    max_age_days: int = setting(
        "EVENT_MAX_AGE_DAYS", 365, integer(maximum=5 * 365 - 1, why=_WINDOW), "Oldest accepted timestamp (the "
        "aggregates' refresh looks back this + 35 days).")
    publish_timeout_s: float = setting(
        "PUBLISH_TIMEOUT_SECONDS", 10.0, positive, "Bound on a publish, retries included.")
    retry_after_s: int = setting("RETRY_AFTER_SECONDS", 30, integer(minimum=1), "`Retry-After` on 503.")
    gzip_level: int = setting(
        "PUBSUB_GZIP_LEVEL", 1, integer(minimum=0, maximum=3, why="an ISA-L level"), "gzip level of published "
        "batches (ISA-L, 0-3).")
    quota_events_per_s: float = setting(
        "QUOTA_EVENTS_PER_SECOND", 2000.0, positive, "Token bucket per license fingerprint, per function instance.")
    quota_burst_events: int = setting(
        "QUOTA_BURST_EVENTS", 20_000, integer(minimum=1), "The bucket's size (>= MAX_EVENTS_PER_REQUEST).")
    edge_address: str | None = setting(
        "EDGE_ADDRESS", None, ip_address, "The load balancer's reserved address (deploy.sh sets it with "
        "INGEST_DOMAIN): when X-Forwarded-For ends with it, the entry before it is the client's address.")
    request_log: bool = setting(
        "REQUEST_LOG", True, boolean, "Publish one `requests` row per request (docs/analysts.md, \"Why is data "
        "missing?\").")
    request_log_refused_per_client: int = setting(
        "REQUEST_LOG_REFUSED_PER_CLIENT", 10, integer(minimum=0), "Refused (4xx) requests of one client (license "
        "fingerprint, else IP) recorded one by one per window and function instance; the rest are counted in "
        "one `suppressed` row.")
    request_log_refused_per_instance: int = setting(
        "REQUEST_LOG_REFUSED_PER_INSTANCE", 600, integer(minimum=0), "Refused requests of all clients recorded "
        "one by one per window and function instance; the rest are counted in one `suppressed` row.")
    request_log_window_s: float = setting(
        "REQUEST_LOG_WINDOW_SECONDS", 60.0, positive, "The window of the two bounds above.")
    request_log_flush_s: float = setting(
        "REQUEST_LOG_FLUSH_SECONDS", 1.0, positive, "Rows are published together by the first request that "
        "ends this long after the oldest waiting row (or when 500 wait), and at shutdown.")

    def __post_init__(self) -> None:
        """The rules between settings."""
        if self.allow_unlicensed and self.environment == "prod":
            raise ConfigError("ALLOW_UNLICENSED_INSTANCES cannot be enabled in prod")
        if self.quota_burst_events < self.max_events:
            raise ConfigError("QUOTA_BURST_EVENTS must be >= MAX_EVENTS_PER_REQUEST (a full batch must fit the bucket)")
        if self.max_body_bytes is None:
            object.__setattr__(self, "max_body_bytes", self.max_request_bytes)

    @property
    def topic_path(self) -> str:
        """Fully qualified Pub/Sub topic name."""
        return f"projects/{self.project}/topics/{self.pubsub_topic}"
