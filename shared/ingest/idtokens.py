"""Managed-service callers: a Google-signed OIDC ID token of the service's account, verified with google-auth.

`MANAGED_SERVICES_FILE` lists `SERVICE_ID SERVICE_ACCOUNT_EMAIL` lines; a token is accepted for a service
when its signature verifies against Google's certificates, its issuer is Google, it has not expired, its
audience is `ID_TOKEN_AUDIENCE`, its email is verified and listed for the service it claims to be.
Certificates are fetched once and kept as long as their Cache-Control allows, not per request.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import google.auth.exceptions
from google.auth import transport
from google.auth.transport.requests import Request as RequestsTransport
from google.oauth2 import id_token

from shared.errors import ConfigError, Unauthorized, Unavailable
from shared.ingest.config import IngestConfig
from shared.settings import setting_lines

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
DEFAULT_CERTS_TTL_S = 300
CLOCK_SKEW_S = 10
_MAX_AGE = re.compile(r"max-age=(\d+)")


def looks_like_id_token(token: str) -> bool:
    """A JWT (three base64url parts, a JSON header); license keys are one base64url blob."""
    return token.startswith("eyJ") and token.count(".") == 2


@dataclass(frozen=True)
class ServiceCaller:
    """A caller proven by an ID token: its verified service-account email."""

    email: str


class CachingRequest:
    """A google-auth transport that keeps GET answers as long as their Cache-Control max-age says."""

    def __init__(self, inner: transport.Request | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner or RequestsTransport()
        self._clock = clock
        self._cache: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
                 timeout: float | None = None, **kwargs: object) -> object:
        """Answer a GET from the cache while fresh; fetch (and keep) it otherwise."""
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
            if hit and hit[0] > self._clock():
                return hit[1]
            response = self._inner(url, method="GET", headers=headers, timeout=timeout or 10, **kwargs)
            if response.status == 200:
                found = _MAX_AGE.search(str(response.headers.get("cache-control", "")))
                ttl = int(found.group(1)) if found else DEFAULT_CERTS_TTL_S
                self._cache[url] = (self._clock() + ttl, response)
            return response


def read_services(path: Path) -> dict[str, frozenset[str]]:
    """`SERVICE_ID SERVICE_ACCOUNT_EMAIL` lines (`#` comments): service id -> emails allowed to speak for it."""
    services: dict[str, set[str]] = {}
    for line in setting_lines(path, "MANAGED_SERVICES_FILE"):
        words = line.split()
        if len(words) != 2 or "@" not in words[1]:
            raise ConfigError(f"MANAGED_SERVICES_FILE={path}: {line!r} is not 'SERVICE_ID EMAIL'")
        services.setdefault(words[0], set()).add(words[1].lower())
    return {service: frozenset(emails) for service, emails in services.items()}


class IdTokenVerifier:
    """Verifies ID tokens and says which managed service an email may speak for."""

    def __init__(self, services: dict[str, frozenset[str]], audience: str, certs_url: str,
                 request: transport.Request | None = None) -> None:
        self.services = services
        self.audience = audience
        self.certs_url = certs_url
        self.request = request or CachingRequest()

    @classmethod
    def from_config(cls, config: IngestConfig) -> IdTokenVerifier | None:
        """None when MANAGED_SERVICES_FILE is unset (managed services are refused)."""
        if config.managed_services_file is None:
            return None
        if not config.id_token_audience:
            raise ConfigError("ID_TOKEN_AUDIENCE is required when MANAGED_SERVICES_FILE is set")
        return cls(read_services(config.managed_services_file), config.id_token_audience, config.id_token_certs_url)

    def verify(self, token: str) -> ServiceCaller:
        """The token's verified email, or 401 invalid_id_token (503 when Google's certificates cannot be had)."""
        try:
            claims = id_token.verify_token(token, self.request, audience=self.audience, certs_url=self.certs_url,
                                           clock_skew_in_seconds=CLOCK_SKEW_S)
        except google.auth.exceptions.TransportError as exc:
            raise Unavailable("certs_unavailable", f"cannot fetch ID token certificates: {exc}"[:300],
                              retry_after=30) from None
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthorized("invalid_id_token", f"ID token refused: {exc}"[:300]) from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("invalid_id_token", "ID token is not issued by Google")
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise Unauthorized("invalid_id_token", "ID token carries no verified email")
        return ServiceCaller(email.lower())

    def allows(self, service_id: str, caller: ServiceCaller) -> bool:
        """Whether the caller's account is listed for this service id."""
        return caller.email in self.services.get(service_id, frozenset())
