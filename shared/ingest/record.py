"""RecordEvents: authenticate, read, validate and publish one batch of events."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import Request

from shared import logs
from shared.envelope import Batch, Identity, encode, encode_protobuf
from shared.errors import GatewayError, Unauthorized
from shared.ingest.batch import Limits, validate_batch
from shared.ingest.body import PROTOBUF, body_deadline, check_headers, read_body
from shared.ingest.config import IngestConfig
from shared.ingest.idtokens import IdTokenVerifier, ServiceCaller, looks_like_id_token
from shared.ingest.licenses.keys import decode_license
from shared.ingest.licenses.verifier import License, LicenseVerifier
from shared.ingest.memory import ParseBudget
from shared.ingest.policy import PrivacyPolicy
from shared.ingest.protobatch import validate_messages
from shared.ingest.protobody import PARSED_BYTES_PER_BYTE, ProtoRequest, parse_protobuf
from shared.ingest.publisher import Publisher
from shared.ingest.quota import Quota
from shared.ingest.request import (
    Caller,
    RecordRequest,
    bearer_token,
    body_license_key,
    parse_document,
    parse_identity,
)
from shared.ingest.requestlog import RequestFacts
from shared.ingest.watchdog import WATCHDOG


def claimed_fingerprint(key: str) -> str | None:
    """The fingerprint a refused license key names, when it parses (unverified: what the caller claims)."""
    try:
        return decode_license(key).fingerprint
    except Exception:  # any key that does not parse: no fingerprint, never the key
        return None


def _quota_key(caller: Caller, identity: Identity) -> str:
    """The verified identity a quota bucket belongs to: license fingerprint, or managed service id."""
    if isinstance(caller, License):
        return f"license:{caller.fingerprint}"
    if isinstance(caller, ServiceCaller):
        return f"service:{identity.instance_id}"
    return "unlicensed"


@dataclass
class Outcome:
    """What a handled batch answers and logs."""

    body: dict
    log: dict = field(default_factory=dict)


class RecordEvents:
    """The POST /v1/events handler's logic, independent of routing."""

    def __init__(self, config: IngestConfig, verifier: LicenseVerifier, publisher: Publisher, quota: Quota,
                 budget: ParseBudget | None = None, policy: PrivacyPolicy | None = None) -> None:
        self.config = config
        self.policy = policy or PrivacyPolicy.from_config(config)
        self.id_tokens = IdTokenVerifier.from_config(config)
        self.verifier = verifier
        self.publisher = publisher
        self.quota = quota
        self.budget = budget or ParseBudget(config.max_parse_memory, config.retry_after_s)
        self.limits = Limits(
            max_event_bytes=config.max_event_bytes,
            max_depth=config.max_event_depth,
            max_string_chars=config.max_string_chars,
            max_future=timedelta(seconds=config.max_future_s),
            max_age=timedelta(days=config.max_age_days),
        )

    def authenticate(self, request: Request, facts: RequestFacts) -> tuple[bool, Caller]:
        """Check the header's credential (a license key, or a managed service's ID token) before the body is
        read: (whether the header carried one, the verified caller)."""
        token = bearer_token(request.headers.get("Authorization"), self.config.max_auth_header_chars)
        if token is None:
            return False, None
        if looks_like_id_token(token):
            if self.id_tokens is None:
                raise Unauthorized("invalid_id_token", "this gateway accepts no managed services")
            return True, self.id_tokens.verify(token)
        return True, self._verify_license(token, facts)

    def _verify_license(self, key: str, facts: RequestFacts) -> License:
        """The verified license, its fingerprint noted in the request's facts; a refused one leaves there the
        fingerprint it claims."""
        try:
            verified = self.verifier.verify(key)
        except GatewayError:
            facts.license_fingerprint = claimed_fingerprint(key)
            raise
        facts.license_fingerprint = verified.fingerprint
        return verified

    def body_caller(self, metadata: dict, facts: RequestFacts) -> Caller:
        """Without an Authorization header: the license key the body carries (where Sourcegraph's exporter
        puts it), verified now that the body passed its limits; None when unlicensed callers are allowed."""
        key = body_license_key(metadata, self.config.max_auth_header_chars)
        if key is not None:
            return self._verify_license(key, facts)
        if self.config.allow_unlicensed:
            return None
        raise Unauthorized("missing_license", "send 'Authorization: Bearer <license key>' (or the key in "
                           "metadata.identifier.licensedInstance.licenseKey)")

    def read(self, request: Request, facts: RequestFacts) -> tuple[str, bytes]:
        """The body's format and bytes, within its size limits and its deadline (even for a trickled body)."""
        fmt, encoding = check_headers(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        facts.format, facts.content_encoding, facts.wire_bytes = fmt, encoding, request.content_length
        config = self.config
        deadline = body_deadline(request.content_length, config.body_timeout_s, config.body_min_rate,
                                 config.body_grace_s)
        with WATCHDOG.guard(request.environ.get("gunicorn.socket"), time.monotonic() + deadline):
            raw = read_body(request.stream, request.content_length, encoding, max_wire=config.max_body_bytes,
                            max_inflated=config.max_request_bytes, timeout_s=deadline)
        facts.body_bytes = len(raw)
        return fmt, raw

    def handle(self, request: Request, facts: RequestFacts | None = None) -> Outcome:
        """Authenticate, read, parse within the memory budget, validate, publish; GatewayError for refusals.

        facts (the request log's) learns what each step found, also when a later step refuses the request.
        """
        facts = RequestFacts() if facts is None else facts
        had_credential, caller = self.authenticate(request, facts)
        fmt, raw = self.read(request, facts)
        max_events = self.config.max_events
        protobuf = fmt == PROTOBUF
        reserved = (self.budget.hold(len(raw) * PARSED_BYTES_PER_BYTE) if protobuf
                    else self.budget.reserve(raw, max_events))
        with reserved:
            parsed = parse_protobuf(raw, max_events) if protobuf else parse_document(raw, max_events)
            facts.events, facts.request_id = len(parsed.events), parsed.request_id
            return self._record(parsed, caller if had_credential else self.body_caller(parsed.metadata, facts),
                                facts)

    def _record(self, parsed: RecordRequest | ProtoRequest, caller: Caller, facts: RequestFacts) -> Outcome:
        identity = parse_identity(parsed.metadata, caller, self.config, self.id_tokens)
        facts.caller_kind, facts.instance_id = identity.kind, identity.instance_id
        facts.license_fingerprint = identity.license_fingerprint
        request_id = parsed.request_id
        events = len(parsed.events)
        self.quota.take(_quota_key(caller, identity), events)
        now = datetime.now(UTC)
        log = {"instanceId": identity.instance_id, "requestId": request_id, "events": events}
        if isinstance(parsed, ProtoRequest):
            result, publish = self._validate_messages(parsed, identity, request_id, now, log)
        else:
            result, publish = self._validate_json(parsed, identity, request_id, now)
        succeeded: list[str] = []
        if publish is not None:
            data, attributes = publish()
            started = time.perf_counter()
            log["messageId"] = self.publisher.publish(data, attributes)
            log["publishMs"] = round((time.perf_counter() - started) * 1000, 2)
            log["messageBytes"] = len(data)
            succeeded = result.ids
        log["accepted"] = facts.accepted = len(succeeded)
        for (feature, name), count in result.redacted_by_feature().items():  # names and counts, never values
            logs.info("fields_redacted", instanceId=identity.instance_id, feature=feature, field=name, count=count)
            facts.redacted[name] += count
        facts.refused = Counter(f.reason for f in result.failures)
        facts.warnings = Counter(w.code for w in result.warnings)
        facts.earliest, facts.latest = result.earliest, result.latest
        log["failedByReason"] = dict(facts.refused)
        if facts.warnings:
            log["warnings"] = dict(facts.warnings)
        body = {"succeededEvents": succeeded, "failedEvents": [f.as_json() for f in result.failures],
                "warnings": [w.as_json() for w in result.warnings]}
        return Outcome(body, log)

    def _validate_json(self, parsed: RecordRequest, identity: Identity, request_id: str | None,
                       now: datetime) -> tuple[object, object]:
        """The JSON batch's verdicts, and how to encode the message of its accepted events (None: nothing to)."""
        result = validate_batch(parsed.events, self.limits, now,
                                lambda event: self.policy.apply(event, identity.instance_id,
                                                                identity.license_fingerprint))
        if not result.accepted:
            return result, None
        batch = Batch(identity, request_id, now.isoformat(), result.accepted, result.redacted)
        return result, lambda: encode(batch, self.config.gzip_level, events_json=result.accepted_json)

    def _validate_messages(self, parsed: ProtoRequest, identity: Identity, request_id: str | None,
                           now: datetime, log: dict) -> tuple[object, object]:
        """The protobuf batch's verdicts (refused events removed from it), and how to encode the rest."""
        body = parsed.body
        result = validate_messages(body.events, parsed.sizes, self.limits, now,
                                   lambda event: self.policy.apply_message(event, identity.instance_id,
                                                                           identity.license_fingerprint),
                                   had_unknown=parsed.unknown_bytes > 0)
        if parsed.unknown_bytes:
            log["unknownFieldBytes"] = parsed.unknown_bytes
        if not result.ids:
            return result, None
        body.ClearField("metadata")  # the license key, if the body carried it, goes no further
        batch = Batch(identity, request_id, now.isoformat(), body.events, result.redacted)
        return result, lambda: encode_protobuf(batch, body.SerializeToString(), self.config.gzip_level)
