"""Per-event validation of a protobuf batch, on the messages themselves (no dicts on the hot path).

The rules and refusal codes are those of `checks` and `batch` for JSON; tests/unit/ingest/test_protobatch.py
holds both to the same verdict on the same events. Where protobuf differs: an unset proto3 field reads as
its zero value, so an empty id or feature is a missing one; sizes are the event's protobuf bytes.
The batch is then edited in place: refused events removed, fields the privacy policy drops cleared, so
the accepted events are published as they arrived.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.event import ID_MAX, NAME_MAX, NAME_RULE, STR_MAX, VERSION_MAX
from shared.ingest.batch import Failure, Limits, Refusal, Verdicts, count_redactions
from shared.structs import null_non_finite
from shared.telemetrygateway_pb2 import Event
from shared.timestamps import micros, stamp_micros

_name_match = NAME_RULE.match
_isfinite, _fsum = math.isfinite, math.fsum
NANOS = 1_000_000_000
# Each nesting level of a Struct costs at least 4 bytes on the wire (list in list: two tags, two lengths).
STRUCT_BYTES_PER_LEVEL = 4
PRIVATE_METADATA_DEPTH = 3  # event > parameters > privateMetadata, as the JSON path counts

RedactMessage = Callable[[Event], list[str]]


@dataclass
class MessageBatchResult(Verdicts):
    """Ids, features and policy removals of the accepted events (left in the batch), and the refused ones."""

    ids: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    redacted: list[list[str]] = field(default_factory=list)

    def redacted_by_feature(self) -> dict[tuple[str, str], int]:
        """(feature, field) -> events that lost that field to the privacy policy."""
        return count_redactions(self.features, self.redacted)


def _struct_depth(value: object, depth: int) -> int:
    """The deepest JSON nesting level inside a Struct / ListValue (the Struct itself at `depth`)."""
    deepest = depth
    items = value.fields.values() if hasattr(value, "fields") else value.values
    for item in items:
        kind = item.WhichOneof("kind")
        if kind == "struct_value":
            deepest = max(deepest, _struct_depth(item.struct_value, depth + 1))
        elif kind == "list_value":
            deepest = max(deepest, _struct_depth(item.list_value, depth + 1))
    return deepest


def _strings(message: object) -> list[str]:
    """Every string in a message and below it (map keys and values included)."""
    found = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            for key, item in value.items():
                found.append(key)
                if isinstance(item, str):
                    found.append(item)
                elif hasattr(item, "ListFields"):
                    found += _strings(item)
        elif descriptor.is_repeated:
            for item in value:
                found += _strings(item) if hasattr(item, "ListFields") else [item] if isinstance(item, str) else []
        elif isinstance(value, str):
            found.append(value)
        elif hasattr(value, "ListFields"):
            found += _strings(value)
    return found


def _long_named_string(event: Event, size: int) -> bool:
    """Whether an optional string field is longer than STR_MAX (only an event that large can hold one)."""
    if size <= STR_MAX:
        return False
    source, params, user, interaction = event.source, event.parameters, event.user, event.interaction
    named = [source.client.name, source.client.version, params.billing_metadata.product,
             params.billing_metadata.category, user.anonymous_user_id, user.sams_external_id,
             *(value for _, value in event.marketing_tracking.ListFields()),
             interaction.trace_id, interaction.interaction_id, interaction.geolocation.country_code]
    return any(len(text) > STR_MAX for text in named)


def _too_complex(event: Event, size: int, limits: Limits) -> str | None:
    """Nesting deeper, or a string (anywhere, map keys too) longer than allowed, else None."""
    params = event.parameters
    if params.HasField("private_metadata"):
        private = params.private_metadata
        levels = limits.max_depth - PRIVATE_METADATA_DEPTH
        if private.ByteSize() >= STRUCT_BYTES_PER_LEVEL * levels and _struct_depth(
                private, PRIVATE_METADATA_DEPTH) > limits.max_depth:
            return f"nested deeper than {limits.max_depth} levels"
    if size > limits.max_string_chars and any(len(text) > limits.max_string_chars for text in _strings(event)):
        return f"a string is longer than {limits.max_string_chars} characters"
    return None


def check_message(event: Event, size: int, limits: Limits, window: tuple[int, int]) -> Refusal | None:
    """The verdict on one event message of `size` bytes: None when it is valid, else the Refusal (in the JSON
    path's order: size, complexity, then the event rules, then the time window: (oldest, latest) accepted
    timestamps in microseconds)."""
    if size > limits.max_event_bytes:
        return Refusal("event_too_large", f"event is {size} bytes, limit {limits.max_event_bytes}")
    problem = _too_complex(event, size, limits)
    if problem:
        return Refusal("event_too_complex", problem)
    if not 0 < len(event.id) <= ID_MAX:
        return Refusal("invalid_event", f"id: a string of 1 to {ID_MAX} characters is required")
    if not event.HasField("timestamp"):
        return Refusal("invalid_event", "timestamp: required")
    stamp = event.timestamp
    if not 0 <= stamp.nanos < NANOS:
        return Refusal("invalid_event", "timestamp: nanos must be 0 to 999,999,999")
    feature, action = event.feature, event.action
    if len(feature) > NAME_MAX or not _name_match(feature):
        return _bad_name("feature")
    if len(action) > NAME_MAX or not _name_match(action):
        return _bad_name("action")
    if not 0 < len(event.source.server.version) <= VERSION_MAX:
        return Refusal("invalid_event", f"source.server.version: a string of 1 to {VERSION_MAX} characters is "
                       "required")
    if _long_named_string(event, size):
        return Refusal("invalid_event", f"a string field is longer than {STR_MAX} characters")
    metadata = event.parameters.metadata
    if metadata:
        values = metadata.values()
        try:
            finite = _isfinite(_fsum(values))
        except (OverflowError, ValueError):  # finite values whose sum overflows; inf and -inf together
            finite = False
        if not finite and not all(_isfinite(v) for v in values):
            return Refusal("invalid_event", "parameters.metadata: values must be finite numbers")
    at = stamp_micros(stamp.seconds, stamp.nanos)
    if at > window[1]:
        return Refusal("timestamp_in_future", f"timestamp more than {limits.max_future} ahead of server time")
    if at < window[0]:
        return Refusal("timestamp_too_old", f"timestamp older than {limits.max_age.days} days")
    return None


def _bad_name(name: str) -> Refusal:
    return Refusal("invalid_event", f"{name}: must match {NAME_RULE.pattern} and be at most {NAME_MAX} characters")


def time_window(limits: Limits, now: datetime) -> tuple[int, int]:
    """The oldest and latest timestamps accepted now, in microseconds since the epoch."""
    now_us = micros(now)
    return (now_us - int(limits.max_age.total_seconds() * 1_000_000),
            now_us + int(limits.max_future.total_seconds() * 1_000_000))


def _changes(event: Event, size: int, had_unknown: bool) -> tuple[str, ...]:
    """The warnings' codes of a valid event message (before the privacy policy): unknown fields were dropped
    when the parsed event is smaller than its bytes on the wire (looked at only when the body had some)."""
    codes: tuple[str, ...] = ()
    params = event.parameters
    legacy = params.legacy_metadata
    if legacy and params.metadata and not legacy.keys().isdisjoint(params.metadata.keys()):
        codes += ("legacy_metadata_overridden",)
    if had_unknown and event.ByteSize() < size:
        codes += ("unknown_fields_dropped",)
    if event.timestamp.nanos % 1000:
        codes += ("timestamp_truncated",)
    return codes


def validate_messages(events: object, sizes: list[int], limits: Limits, now: datetime,
                      redact: RedactMessage | None = None, had_unknown: bool = False) -> MessageBatchResult:
    """Validate every event of a repeated Event field (sizes: each one's bytes on the wire), then leave only
    the accepted ones in it.

    Duplicates of an id already accepted in this batch are refused; redact (the privacy policy) clears
    what may not be published and returns the fields it removed; had_unknown: the body held fields this
    gateway does not declare (dropped by the parser), so each event's size is compared.
    """
    result = MessageBatchResult()
    seen: set[str] = set()
    refused: list[int] = []
    window = time_window(limits, now)
    for index, (event, size) in enumerate(zip(events, sizes, strict=True)):
        event_id = event.id
        if event_id in seen:
            result.failures.append(Failure(index, event_id, "duplicate_id", "id repeated in this batch"))
            refused.append(index)
            continue
        verdict = check_message(event, size, limits, window)
        if verdict is not None:
            result.failures.append(Failure(index, event_id or None, verdict.reason, verdict.message))
            refused.append(index)
            continue
        seen.add(event_id)
        codes = _changes(event, size, had_unknown)
        removed = redact(event) if redact else []
        params = event.parameters
        if params.HasField("private_metadata") and null_non_finite(params.private_metadata):
            codes += ("non_finite_nulled",)
        stamp = event.timestamp
        result.accept(index, event_id, stamp_micros(stamp.seconds, stamp.nanos), codes, removed)
        result.ids.append(event_id)
        result.features.append(event.feature)
        result.redacted.append(removed)
    for index in reversed(refused):
        del events[index]
    return result
