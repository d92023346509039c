"""The telemetry v2 event (proto3 JSON mapping) and per-event validation of a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from shared.event_check import ID_MAX, INT32, INT64, INT_TEXT, NAME_MAX, NAME_RULE, Invalid, check
from shared.timestamps import parse_rfc3339


def _opt_str() -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=4096))


class Timestamp(fields.Field):
    """RFC 3339 timestamp with a zone (up to nanosecond digits; stored to microseconds)."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> datetime:
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Number(fields.Field):
    """A JSON number (not a boolean, not a string), finite."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> float:
        if type(value) not in (int, float) or value != value or value in (float("inf"), float("-inf")):
            raise ValidationError("must be a finite number")
        return float(value)


class Int(fields.Field):
    """An integer in [low, high]: a JSON integer, or (int64 in proto3 JSON) a decimal string if allowed."""

    def __init__(self, low: int, high: int, *, strings: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.low, self.high, self.strings = low, high, strings

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> int:
        if not (type(value) is int or (self.strings and type(value) is str and INT_TEXT.match(value))):
            raise ValidationError("must be an integer")
        number = int(value)
        if not self.low <= number <= self.high:
            raise ValidationError("integer out of range")
        return number


class _Open(Schema):
    """Unknown fields are kept (the sink stores them in `extra`)."""

    class Meta:
        unknown = INCLUDE


class ServerSchema(_Open):
    version = fields.String(required=True, validate=validate.Length(min=1, max=256))


class ClientSchema(_Open):
    name = _opt_str()
    version = _opt_str()


class SourceSchema(_Open):
    server = fields.Nested(ServerSchema, required=True)
    client = fields.Nested(ClientSchema, allow_none=True)


class BillingSchema(_Open):
    product = _opt_str()
    category = _opt_str()


class ParametersSchema(_Open):
    version = Int(*INT32, strings=False, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=Number(), allow_none=True)
    legacyMetadata = fields.Dict(keys=fields.String(), values=Int(*INT64, strings=True), allow_none=True)
    privateMetadata = fields.Dict(allow_none=True)
    billingMetadata = fields.Nested(BillingSchema, allow_none=True)


class UserSchema(_Open):
    userId = Int(*INT64, strings=True, allow_none=True)
    anonymousUserId = _opt_str()
    samsExternalId = _opt_str()


class FeatureFlagsSchema(_Open):
    flags = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)


class MarketingSchema(_Open):
    url = _opt_str()
    firstSourceUrl = _opt_str()
    cohortId = _opt_str()
    referrer = _opt_str()
    lastSourceUrl = _opt_str()
    deviceSessionId = _opt_str()
    sessionReferrer = _opt_str()
    sessionFirstUrl = _opt_str()


class GeolocationSchema(_Open):
    countryCode = _opt_str()


class InteractionSchema(_Open):
    traceId = _opt_str()
    interactionId = _opt_str()
    geolocation = fields.Nested(GeolocationSchema, allow_none=True)


class EventSchema(_Open):
    """A telemetry v2 event."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=ID_MAX))
    timestamp = Timestamp(required=True)
    feature = fields.String(required=True, validate=[validate.Length(max=NAME_MAX), validate.Regexp(NAME_RULE)])
    action = fields.String(required=True, validate=[validate.Length(max=NAME_MAX), validate.Regexp(NAME_RULE)])
    source = fields.Nested(SourceSchema, required=True)
    parameters = fields.Nested(ParametersSchema, allow_none=True)
    user = fields.Nested(UserSchema, allow_none=True)
    featureFlags = fields.Nested(FeatureFlagsSchema, allow_none=True)
    marketingTracking = fields.Nested(MarketingSchema, allow_none=True)
    interaction = fields.Nested(InteractionSchema, allow_none=True)


EVENT_SCHEMA = EventSchema()


def known_fields(schema: Schema = EVENT_SCHEMA) -> dict[str, dict | None]:
    """The declared field tree: name -> sub-tree for nested objects, None for leaves."""
    tree: dict[str, dict | None] = {}
    for name, fld in schema.fields.items():
        tree[name] = known_fields(fld.schema) if isinstance(fld, fields.Nested) else None
    return tree


@dataclass(frozen=True)
class Limits:
    """Per-event limits, from Config."""

    max_event_bytes: int
    max_depth: int
    max_string_chars: int
    max_future: timedelta
    max_age: timedelta


@dataclass
class Failure:
    """One refused event, as reported in failedEvents."""

    index: int
    id: str | None
    reason: str
    message: str
    retryable: bool = False

    def as_json(self) -> dict:
        """The failedEvents entry."""
        return {"index": self.index, "id": self.id, "reason": self.reason, "message": self.message,
                "retryable": self.retryable}


@dataclass
class BatchResult:
    """Accepted (normalized) events and refused ones, in request order."""

    accepted: list[dict] = field(default_factory=list)
    accepted_json: list[bytes] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _shape_problem(value: object, limits: Limits, depth: int = 1) -> str | None:
    """Nesting deeper than allowed or a string longer than allowed, else None."""
    if depth > limits.max_depth:
        return f"nested deeper than {limits.max_depth} levels"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and len(key) > limits.max_string_chars:
            return f"a key is longer than {limits.max_string_chars} characters"
        if isinstance(item, str):
            if len(item) > limits.max_string_chars:
                return f"{key!s}: string longer than {limits.max_string_chars} characters"
        elif isinstance(item, dict | list):
            problem = _shape_problem(item, limits, depth + 1)
            if problem:
                return problem
    return None


def _first_error(messages: dict | list | str, path: str = "") -> str:
    if isinstance(messages, dict):
        key, sub = next(iter(messages.items()))
        return _first_error(sub, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], path)
    return f"{path}: {messages}"


def _normalized(event: dict) -> dict:
    """The event as published: legacyMetadata merged into metadata (metadata wins), the rest untouched."""
    params = event.get("parameters")
    if not params or "legacyMetadata" not in params:
        return event
    merged = {k: float(int(v)) for k, v in (params.get("legacyMetadata") or {}).items()}
    merged.update({k: float(v) for k, v in (params.get("metadata") or {}).items()})
    new_params = {k: v for k, v in params.items() if k != "legacyMetadata"}
    new_params["metadata"] = merged
    return {**event, "parameters": new_params}


def _explain(event: dict, fallback: str) -> str:
    """Why the event is invalid, in the schema's words (the slow path runs only for refused events)."""
    try:
        EVENT_SCHEMA.load(event)
    except ValidationError as exc:
        return _first_error(exc.messages)
    return fallback


def _shape_ok(raw: bytes, limits: Limits) -> bool:
    """Cheap proof that no string is too long and nothing is nested too deep (else walk the event)."""
    return len(raw) <= limits.max_string_chars and raw.count(b"{") + raw.count(b"[") < limits.max_depth


def check_event(event: object, limits: Limits, now: datetime) -> tuple[dict | None, bytes | str, str]:
    """Validate one event: (normalized event, its JSON, "") or (None, reason, message)."""
    if not isinstance(event, dict):
        return None, "invalid_event", "event is not a JSON object"
    try:
        raw = orjson.dumps(event)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (255 levels)
        return None, "event_too_complex", f"nested deeper than {limits.max_depth} levels"
    if len(raw) > limits.max_event_bytes:
        return None, "event_too_large", f"event is {len(raw)} bytes, limit {limits.max_event_bytes}"
    problem = None if _shape_ok(raw, limits) else _shape_problem(event, limits)
    if problem:
        return None, "event_too_complex", problem
    try:
        ts = check(event)
    except Invalid as exc:
        return None, "invalid_event", _explain(event, str(exc))
    if ts > now + limits.max_future:
        return None, "timestamp_in_future", f"timestamp more than {limits.max_future} ahead of server time"
    if ts < now - limits.max_age:
        return None, "timestamp_too_old", f"timestamp older than {limits.max_age.days} days"
    normalized = _normalized(event)
    return normalized, raw if normalized is event else orjson.dumps(normalized), ""


def validate_batch(events: list, limits: Limits, now: datetime) -> BatchResult:
    """Validate every event; duplicates of an id already accepted in this batch are refused."""
    result = BatchResult()
    seen: set[str] = set()
    for index, event in enumerate(events):
        event_id = event.get("id") if isinstance(event, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        if event_id is not None and event_id in seen:
            result.failures.append(Failure(index, event_id, "duplicate_id", "id repeated in this batch"))
            continue
        normalized, raw_or_reason, message = check_event(event, limits, now)
        if normalized is None:
            result.failures.append(Failure(index, event_id, raw_or_reason, message))
            continue
        seen.add(event_id)
        result.accepted.append(normalized)
        result.accepted_json.append(raw_or_reason)
    return result
