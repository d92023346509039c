"""RecordEvents: authenticate, read, validate and publish one batch of events."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from flask import Request

from shared.body import check_headers, read_body
from shared.config import Config
from shared.envelope import Batch, Identity, encode
from shared.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from shared.events import Limits, validate_batch
from shared.licenses import License, LicenseVerifier
from shared.publisher import Publisher
from shared.quota import Quota

MAX_ID_CHARS = 256


@dataclass
class Outcome:
    """What a handled batch answers and logs."""

    body: dict
    log: dict = field(default_factory=dict)


def bearer_token(header: str | None, max_chars: int = 4096) -> str | None:
    """The token of an `Authorization: Bearer ...` header, None when absent."""
    if not header:
        return None
    if len(header) > max_chars:
        raise Unauthorized("invalid_authorization", f"Authorization header longer than {max_chars} characters")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("invalid_authorization", "Authorization must be 'Bearer <license key>'")
    return token.strip()


def _short_string(container: dict, key: str, *, required: bool) -> str | None:
    value = container.get(key)
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise BadRequest("invalid_metadata", f"{key} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


def parse_identity(metadata: dict, lic: License | None, config: Config) -> Identity:
    """The caller's identity from request metadata and its (verified) license."""
    identifier = metadata.get("identifier")
    if not isinstance(identifier, dict) or len(identifier) != 1:
        raise BadRequest("invalid_metadata", "metadata.identifier must hold exactly one identifier")
    (kind, ident), = identifier.items()
    if not isinstance(ident, dict):
        raise BadRequest("invalid_metadata", "metadata.identifier value must be an object")
    if kind == "licensedInstance":
        if lic is None:
            raise Unauthorized("missing_license", "licensed instances send 'Authorization: Bearer <license key>'")
        kind_name = "licensed_instance"
    elif kind == "unlicensedInstance":
        if not config.allow_unlicensed:
            raise Forbidden("unlicensed_not_allowed", "this gateway accepts licensed instances only")
        kind_name = "unlicensed_instance"
    else:
        raise Forbidden("identifier_not_allowed", f"identifier {kind!r} is not accepted here")
    return Identity(
        instance_id=_short_string(ident, "instanceId", required=True),
        external_url=_short_string(ident, "externalUrl", required=False),
        license_fingerprint=lic.fingerprint if lic else None,
        license_tags=lic.tags if lic else (),
        environment=config.environment,
        kind=kind_name,
    )


class RecordEvents:
    """The POST /v1/events handler's logic, independent of routing."""

    def __init__(self, config: Config, verifier: LicenseVerifier, publisher: Publisher, quota: Quota) -> None:
        self.config = config
        self.verifier = verifier
        self.publisher = publisher
        self.quota = quota
        self.limits = Limits(
            max_event_bytes=config.max_event_bytes,
            max_depth=config.max_event_depth,
            max_string_chars=config.max_string_chars,
            max_future=timedelta(seconds=config.max_future_s),
            max_age=timedelta(days=config.max_age_days),
        )

    def authenticate(self, request: Request) -> License | None:
        """Check the license before the body is read."""
        token = bearer_token(request.headers.get("Authorization"), self.config.max_auth_header_chars)
        if token is None:
            if self.config.allow_unlicensed:
                return None
            raise Unauthorized("missing_license", "send 'Authorization: Bearer <license key>'")
        return self.verifier.verify(token)

    def parse(self, request: Request) -> tuple[dict, list]:
        """Read and parse the RecordEvents JSON body: (metadata, events)."""
        encoding = check_headers(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        raw = read_body(request.stream, request.content_length, encoding,
                        max_wire=self.config.max_body_bytes, max_inflated=self.config.max_request_bytes,
                        timeout_s=self.config.body_timeout_s)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("malformed_json", f"body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("invalid_request", "body must be a JSON object with metadata and events")
        metadata, events = doc.get("metadata"), doc.get("events")
        if not isinstance(metadata, dict):
            raise BadRequest("invalid_metadata", "metadata must be an object")
        if not isinstance(events, list):
            raise BadRequest("invalid_request", "events must be a list")
        if len(events) > self.config.max_events:
            raise PayloadTooLarge("too_many_events", f"{len(events)} events; at most {self.config.max_events}")
        return metadata, events

    def handle(self, request: Request) -> Outcome:
        """Authenticate, parse, validate, publish; raise GatewayError for whole-request failures."""
        lic = self.authenticate(request)
        metadata, events = self.parse(request)
        identity = parse_identity(metadata, lic, self.config)
        request_id = _short_string(metadata, "requestId", required=False)
        self.quota.take(identity.instance_id, len(events))
        now = datetime.now(UTC)
        result = validate_batch(events, self.limits, now)
        log = {"instanceId": identity.instance_id, "requestId": request_id, "events": len(events)}
        succeeded: list[str] = []
        if result.accepted:
            batch = Batch(identity, request_id, now.isoformat(), result.accepted)
            data, attributes = encode(batch, self.config.gzip_level, events_json=result.accepted_json)
            started = time.perf_counter()
            log["messageId"] = self.publisher.publish(data, attributes)
            log["publishMs"] = round((time.perf_counter() - started) * 1000, 2)
            log["messageBytes"] = len(data)
            succeeded = [e["id"] for e in result.accepted]
        log["accepted"] = len(succeeded)
        log["failedByReason"] = dict(Counter(f.reason for f in result.failures))
        body = {"succeededEvents": succeeded, "failedEvents": [f.as_json() for f in result.failures]}
        return Outcome(body, log)
