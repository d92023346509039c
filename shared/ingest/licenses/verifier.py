"""License verification for the ingest function: trusted keys, revocation, expiry, caching."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cachetools import TTLCache

from shared.errors import ConfigError, Forbidden, GatewayError, Unauthorized
from shared.ingest.config import IngestConfig
from shared.ingest.licenses.keys import (
    SOURCEGRAPH_PRODUCTION_PUBLIC_KEY,
    LicenseFormatError,
    PublicKey,
    decode_license,
    license_time,
    load_authorized_keys,
    parse_authorized_keys,
    signature_valid,
)
from shared.settings import setting_lines


@dataclass(frozen=True)
class License:
    """A verified license: what the gateway records about the caller."""

    fingerprint: str
    tags: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class Keyring:
    """Keys this deployment trusts, and keys of the other environment (recognized to refuse clearly)."""

    trusted: tuple[PublicKey, ...]
    other_environment: tuple[PublicKey, ...] = ()


def _read_keys(path: Path, setting: str) -> tuple[PublicKey, ...]:
    try:
        return tuple(load_authorized_keys(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{setting}={path}: {exc}") from None


def keyring_from_config(config: IngestConfig) -> Keyring:
    """prod trusts the listed keys or else Sourcegraph's production key; dev needs its dev key(s)."""
    listed = config.trusted_license_keys_file
    trusted = _read_keys(listed, "TRUSTED_LICENSE_KEYS_FILE") if listed else ()
    other_file = config.other_env_license_keys_file
    other = _read_keys(other_file, "OTHER_ENV_LICENSE_KEYS_FILE") if other_file else ()
    production = tuple(parse_authorized_keys(SOURCEGRAPH_PRODUCTION_PUBLIC_KEY))
    if config.environment == "prod":
        return Keyring(trusted or production, other)
    if not trusted:
        raise ConfigError(
            "TELEMETRY_ENV=dev accepts only dev-private licenses: set TRUSTED_LICENSE_KEYS_FILE to the "
            "dev license generation public key(s) (authorized_keys lines)"
        )
    return Keyring(trusted, other or production)


def load_revoked(path: Path | None) -> frozenset[str]:
    """Fingerprints listed one per line (text after # ignored)."""
    if path is None:
        return frozenset()
    return frozenset(line.lower() for line in setting_lines(path, "REVOKED_LICENSES_FILE"))


def _verified(key: str, keyring: Keyring) -> License:
    try:
        lic = decode_license(key)
    except LicenseFormatError as exc:
        raise Unauthorized("invalid_license", f"license key cannot be parsed: {exc}") from None
    if not any(signature_valid(lic, pub) for pub in keyring.trusted):
        if any(signature_valid(lic, pub) for pub in keyring.other_environment):
            raise Forbidden("wrong_environment", "license belongs to the other environment (prod/dev)")
        raise Unauthorized("untrusted_license", "license signature does not verify with a trusted key")
    return License(
        fingerprint=lic.fingerprint,
        tags=tuple(lic.info.get("t") or ()),
        expires_at=license_time(lic.info.get("e")),
    )


class LicenseVerifier:
    """Verifies license keys; signature checks are cached, revocation and expiry checked every time."""

    def __init__(
        self,
        keyring: Keyring,
        revoked: Iterable[str] = (),
        *,
        expiry_grace_days: int = 30,
        cache_size: int = 10_000,
        cache_ttl_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keyring = keyring
        self._revoked = frozenset(revoked)
        self._grace = None if expiry_grace_days < 0 else timedelta(days=expiry_grace_days)
        self._cache: TTLCache[bytes, License | tuple] = TTLCache(cache_size, cache_ttl_s)
        self._lock = threading.Lock()
        self._clock = clock

    @classmethod
    def from_config(cls, config: IngestConfig) -> LicenseVerifier:
        """Build from the deployment's settings (raises ConfigError)."""
        return cls(
            keyring_from_config(config),
            load_revoked(config.revoked_licenses_file),
            expiry_grace_days=config.license_expiry_grace_days,
            cache_size=config.license_cache_size,
            cache_ttl_s=config.license_cache_ttl_s,
        )

    def verify(self, key: str) -> License:
        """Return the license, or raise Unauthorized / Forbidden.

        Results are cached under a hash of the key; a refusal is cached as (error class, code, message), never the key.
        """
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            result = self._cache.get(digest)
        if result is None:
            try:
                result = _verified(key, self._keyring)
            except GatewayError as exc:
                result = (type(exc), exc.code, exc.message)
            with self._lock:
                self._cache[digest] = result
        if isinstance(result, tuple):
            error, code, message = result
            raise error(code, message)
        if result.fingerprint in self._revoked:
            raise Forbidden("license_revoked", "license has been revoked")
        if (self._grace is not None and result.expires_at is not None
                and self._clock() - self._grace.total_seconds() > result.expires_at.timestamp()):
            raise Forbidden("license_expired", f"license expired on {result.expires_at.date()}")
        return result
