"""RecordEvents: authenticate, read, validate and publish one batch of events."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import Request

from shared.config import Config
from shared.envelope import Batch, encode
from shared.errors import Unauthorized
from shared.ingest.batch import Limits, validate_batch
from shared.ingest.body import check_headers, read_body
from shared.ingest.licenses.verifier import License, LicenseVerifier
from shared.ingest.publisher import Publisher
from shared.ingest.quota import Quota
from shared.ingest.request import RecordRequest, bearer_token, parse_document, parse_identity


@dataclass
class Outcome:
    """What a handled batch answers and logs."""

    body: dict
    log: dict = field(default_factory=dict)


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

    def parse(self, request: Request) -> RecordRequest:
        """Read the body within its limits and parse the RecordEvents document."""
        encoding = check_headers(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        raw = read_body(request.stream, request.content_length, encoding,
                        max_wire=self.config.max_body_bytes, max_inflated=self.config.max_request_bytes,
                        timeout_s=self.config.body_timeout_s)
        return parse_document(raw, self.config.max_events)

    def handle(self, request: Request) -> Outcome:
        """Authenticate, parse, validate, publish; raise GatewayError for whole-request failures."""
        lic = self.authenticate(request)
        parsed = self.parse(request)
        identity = parse_identity(parsed.metadata, lic, self.config)
        request_id = parsed.request_id
        self.quota.take(identity.instance_id, len(parsed.events))
        now = datetime.now(UTC)
        result = validate_batch(parsed.events, self.limits, now)
        log = {"instanceId": identity.instance_id, "requestId": request_id, "events": len(parsed.events)}
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
