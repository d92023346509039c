"""Per-event validation of a batch: limits, the verdict on each event, and the batch's result."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from shared.event import has_unknown_fields
from shared.ingest.checks import Invalid, check
from shared.ingest.names import DuplicateField, camel_case
from shared.ingest.policy import MARKETING_TRACKING, PRIVATE_METADATA
from shared.ingest.schema import explain
from shared.timestamps import micros

# Warnings: an accepted event that was changed on its way in (docs/api.md, "Warnings"). Code -> message.
WARNINGS = {
    "private_metadata_removed": "parameters.privateMetadata removed by the gateway's privacy policy",
    "marketing_tracking_removed": "marketingTracking removed by the gateway's privacy policy",
    "legacy_metadata_overridden": "a key of parameters.legacyMetadata is also in parameters.metadata: "
                                  "metadata's value was kept",
    "unknown_fields_kept": "fields this gateway does not declare were kept as they are (the extra column)",
    "unknown_fields_dropped": "protobuf fields this gateway does not declare were dropped",
    "timestamp_truncated": "timestamp had digits below the microsecond: stored to the microsecond",
    "non_finite_nulled": "a number in parameters.privateMetadata was NaN or infinite (JSON has no such number): "
                         "stored as null",
}
REDACTION_WARNINGS = {PRIVATE_METADATA: "private_metadata_removed", MARKETING_TRACKING: "marketing_tracking_removed"}
_SUB_MICRO = re.compile(r"\.\d{6}(\d+)")
_MICRO_STAMP_CHARS = len("2026-01-01T00:00:00.000000Z")


@dataclass(frozen=True)
class Limits:
    """Per-event limits, from IngestConfig."""

    max_event_bytes: int
    max_depth: int
    max_string_chars: int
    max_future: timedelta
    max_age: timedelta


@dataclass(slots=True)
class Accepted:
    """An accepted event as it will be published, its JSON (serialized once), its time in microseconds since
    the epoch and the warnings' codes of what was changed (not frozen: made for every event, a frozen
    dataclass's __init__ costs a call per field)."""

    event: dict
    json: bytes
    at: int = 0
    warnings: tuple[str, ...] = ()


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
class EventWarning:
    """An accepted event that was changed, as reported in warnings."""

    index: int
    id: str
    code: str

    def as_json(self) -> dict:
        """The warnings entry."""
        return {"index": self.index, "id": self.id, "code": self.code, "message": WARNINGS[self.code]}


@dataclass
class Verdicts:
    """What both encodings' batch results report: refusals, warnings, accepted events' time span."""

    failures: list[Failure] = field(default_factory=list)
    warnings: list[EventWarning] = field(default_factory=list)
    earliest: int | None = None  # accepted events' earliest and latest timestamps, microseconds since the epoch
    latest: int | None = None

    def accept(self, index: int, event_id: str, at: int, codes: tuple[str, ...], removed: list[str]) -> None:
        """Note an accepted event: its time and its warnings (changes, and removals by the privacy policy)."""
        earliest = self.earliest
        if earliest is None:
            self.earliest = self.latest = at
        elif at < earliest:
            self.earliest = at
        elif at > self.latest:
            self.latest = at
        if codes or removed:
            for code in (*codes, *(REDACTION_WARNINGS[name] for name in removed)):
                self.warnings.append(EventWarning(index, event_id, code))


@dataclass
class BatchResult(Verdicts):
    """Accepted (normalized) events and refused ones, in request order."""

    accepted: list[dict] = field(default_factory=list)
    accepted_json: list[bytes] = field(default_factory=list)
    redacted: list[list[str]] = field(default_factory=list)  # per accepted event: fields removed by policy

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


def _normalized(event: dict) -> tuple[dict, bool]:
    """The event as published: legacyMetadata merged into metadata (metadata wins), the rest untouched; and
    whether a key was in both.

    legacyMetadata is map<string, int64> (values may be decimal strings): they stay exact integers, never
    pass through a float (9007199254740993 stays 9007199254740993).
    """
    params = event.get("parameters")
    if not params or "legacyMetadata" not in params:
        return event, False
    merged = {k: int(v) for k, v in (params.get("legacyMetadata") or {}).items()}
    metadata = params.get("metadata") or {}
    clash = not merged.keys().isdisjoint(metadata)
    merged.update(metadata)
    new_params = {k: v for k, v in params.items() if k != "legacyMetadata"}
    new_params["metadata"] = merged
    return {**event, "parameters": new_params}, clash


def truncated_below_micros(stamp: str) -> bool:
    """Whether an RFC 3339 text has non-zero digits below the microsecond (parsing cuts them)."""
    if len(stamp) <= _MICRO_STAMP_CHARS:
        return False
    found = _SUB_MICRO.search(stamp)
    return found is not None and found.group(1).strip("0") != ""


def _changes(event: dict, clash: bool) -> tuple[str, ...]:
    """The warnings' codes of a valid (camelCase) event, before the privacy policy."""
    codes = ("legacy_metadata_overridden",) if clash else ()
    if has_unknown_fields(event):
        codes += ("unknown_fields_kept",)
    if truncated_below_micros(event["timestamp"]):
        codes += ("timestamp_truncated",)
    return codes


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
    normalized, clash = _normalized(event)
    return Accepted(normalized, raw if normalized is original else orjson.dumps(normalized),
                    micros(ts), _changes(event, clash))


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
        result.accept(index, event_id, verdict.at, verdict.warnings, removed)
        result.accepted.append(published)
        result.accepted_json.append(verdict.json if published is verdict.event else orjson.dumps(published))
        result.redacted.append(removed)
    return result
