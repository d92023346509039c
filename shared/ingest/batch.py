"""Per-event validation of a batch: limits, the verdict on each event, and the batch's result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from shared.ingest.checks import Invalid, check
from shared.ingest.names import DuplicateField, camel_case
from shared.ingest.schema import explain


@dataclass(frozen=True)
class Limits:
    """Per-event limits, from IngestConfig."""

    max_event_bytes: int
    max_depth: int
    max_string_chars: int
    max_future: timedelta
    max_age: timedelta


@dataclass(frozen=True)
class Accepted:
    """An accepted event as it will be published, and its JSON (serialized once)."""

    event: dict
    json: bytes


@dataclass(frozen=True)
class Refusal:
    """Why an event is refused: a stable reason code and a message."""

    reason: str
    message: str


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
    redacted: list[list[str]] = field(default_factory=list)  # per accepted event: fields removed by policy
    failures: list[Failure] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The accepted events' ids, in request order."""
        return [event["id"] for event in self.accepted]

    def redacted_by_feature(self) -> dict[tuple[str, str], int]:
        """(feature, field) -> events that lost that field to the privacy policy."""
        return count_redactions([event["feature"] for event in self.accepted], self.redacted)


def count_redactions(features: list[str], redacted: list[list[str]]) -> dict[tuple[str, str], int]:
    """(feature, field) -> events that lost that field to the privacy policy (features[i] is event i's)."""
    counts: dict[tuple[str, str], int] = {}
    for feature, fields in zip(features, redacted, strict=True):
        for name in fields:
            counts[feature, name] = counts.get((feature, name), 0) + 1
    return counts


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


def _normalized(event: dict) -> dict:
    """The event as published: legacyMetadata merged into metadata (metadata wins), the rest untouched.

    legacyMetadata is map<string, int64> (values may be decimal strings): they stay exact integers, never
    pass through a float (9007199254740993 stays 9007199254740993).
    """
    params = event.get("parameters")
    if not params or "legacyMetadata" not in params:
        return event
    merged = {k: int(v) for k, v in (params.get("legacyMetadata") or {}).items()}
    merged.update(params.get("metadata") or {})
    new_params = {k: v for k, v in params.items() if k != "legacyMetadata"}
    new_params["metadata"] = merged
    return {**event, "parameters": new_params}


def _shape_ok(raw: bytes, limits: Limits) -> bool:
    """Cheap proof that no string is too long and nothing is nested too deep (else walk the event)."""
    return len(raw) <= limits.max_string_chars and raw.count(b"{") + raw.count(b"[") < limits.max_depth


def check_event(event: object, limits: Limits, now: datetime) -> Accepted | Refusal:
    """The verdict on one event: Accepted (normalized, with its JSON) or Refusal."""
    if not isinstance(event, dict):
        return Refusal("invalid_event", "event is not a JSON object")
    try:
        raw = orjson.dumps(event)
    except orjson.JSONEncodeError as exc:
        if "64-bit" in str(exc):  # parsed exactly by shared.jsontext; BigQuery's JSON cannot hold it
            return Refusal("invalid_event", "an integer does not fit in 64 bits; send it as a string")
        return Refusal("event_too_complex", f"nested deeper than {limits.max_depth} levels")  # orjson: 255
    if len(raw) > limits.max_event_bytes:
        return Refusal("event_too_large", f"event is {len(raw)} bytes, limit {limits.max_event_bytes}")
    problem = None if _shape_ok(raw, limits) else _shape_problem(event, limits)
    if problem:
        return Refusal("event_too_complex", problem)
    original = event
    try:
        event = camel_case(event)
        ts = check(event)
    except DuplicateField as exc:
        return Refusal("invalid_event", str(exc))
    except Invalid as exc:
        return Refusal("invalid_event", explain(event, str(exc)))
    if ts > now + limits.max_future:
        return Refusal("timestamp_in_future", f"timestamp more than {limits.max_future} ahead of server time")
    if ts < now - limits.max_age:
        return Refusal("timestamp_too_old", f"timestamp older than {limits.max_age.days} days")
    normalized = _normalized(event)
    return Accepted(normalized, raw if normalized is original else orjson.dumps(normalized))


Redact = Callable[[dict], tuple[dict, list[str]]]


def validate_batch(events: list, limits: Limits, now: datetime, redact: Redact | None = None) -> BatchResult:
    """Validate every event; duplicates of an id already accepted in this batch are refused.

    redact (the privacy policy) returns the event as it may be published and the fields it removed.
    """
    result = BatchResult()
    seen: set[str] = set()
    for index, event in enumerate(events):
        event_id = event.get("id") if isinstance(event, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        if event_id is not None and event_id in seen:
            result.failures.append(Failure(index, event_id, "duplicate_id", "id repeated in this batch"))
            continue
        verdict = check_event(event, limits, now)
        if isinstance(verdict, Refusal):
            result.failures.append(Failure(index, event_id, verdict.reason, verdict.message))
            continue
        seen.add(event_id)
        published, removed = redact(verdict.event) if redact else (verdict.event, [])
        result.accepted.append(published)
        result.accepted_json.append(verdict.json if published is verdict.event else orjson.dumps(published))
        result.redacted.append(removed)
    return result
