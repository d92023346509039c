"""Turning published events into BigQuery rows (events and rejected_events)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from shared.envelope import Batch
from shared.event import INT64, unknown_fields
from shared.structs import struct_json
from shared.timestamps import micros, parse_rfc3339, stamp_micros

# The Storage Write API accepts column-partition times 10 years back to 1 year ahead; the sink keeps
# the older streaming window (5 years back), which ingest's EVENT_MAX_AGE_DAYS cap follows.
PARTITION_PAST = timedelta(days=5 * 365)
PARTITION_FUTURE = timedelta(days=365)
DETAIL_MAX = 1024  # characters of rejected_events.detail


class RowProblem(ValueError):
    """An event that cannot become a row; it goes to rejected_events with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def row_time(value: object) -> datetime:
    """An RFC 3339 time with a zone from a published batch, else RowProblem."""
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise RowProblem("invalid_event", f"timestamp: {exc}") from None


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _json(value: object) -> str | None:
    try:
        return orjson.dumps(value).decode() if value else None
    except TypeError as exc:  # an integer beyond 64 bits: refused clearly, never stored as a float
        raise RowProblem("invalid_value", f"{exc}: integers beyond 64 bits must be sent as strings") from None


def _int(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RowProblem("invalid_value", f"{name} is not an integer") from None
    if isinstance(value, bool) or (isinstance(value, float) and value != number) or not INT64[0] <= number <= INT64[1]:
        raise RowProblem("invalid_value", f"{name} is out of range")
    return number


def _metadata(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise RowProblem("invalid_value", "parameters.metadata must map names to numbers")
    for number in value.values():
        if type(number) is not int and type(number) is not float:
            raise RowProblem("invalid_value", "parameters.metadata must map names to numbers")
    return _json(value)


def context_columns(batch: Batch, message_id: str, published_at: int | None) -> dict:
    """Columns every row of a message shares."""
    ident = batch.identity
    return {
        "instance_id": ident.instance_id,
        "external_url": ident.external_url,
        "license_fingerprint": ident.license_fingerprint,
        "license_tags": list(ident.license_tags),
        "environment": ident.environment,
        "request_id": batch.request_id,
        "message_id": message_id,
        "received_at": micros(row_time(batch.received_at)),
        "published_at": published_at,
        "caller_kind": ident.kind,
        "service_environment": ident.service_environment,
        "caller_email": ident.caller_email,
    }


@lru_cache(maxsize=4)
def _window(now: datetime) -> tuple[datetime, datetime]:
    """Partition window bounds for one batch's clock reading (computed once per batch)."""
    return now - PARTITION_PAST, now + PARTITION_FUTURE


def event_row(event: object, now: datetime, redacted: list[str] | None = None) -> dict:
    """The event's own columns of its events row (batch columns are added by the writer), or RowProblem.

    String columns take the values as sent: a non-string fails serialization and the event is rejected.
    """
    if type(event) is not dict:
        raise RowProblem("invalid_event", "event is not a JSON object")
    get = event.get
    event_id, feature, action = get("id"), get("feature"), get("action")
    if not (event_id and feature and action):
        raise RowProblem("invalid_event", "id, feature and action are required")
    moment = row_time(get("timestamp"))
    low, high = _window(now)
    if not low <= moment <= high:
        raise RowProblem("timestamp_out_of_range", f"{moment.isoformat()} is outside BigQuery's partition window")
    source, params = _obj(get("source")), _obj(get("parameters"))
    client, billing, user = _obj(source.get("client")), _obj(params.get("billingMetadata")), _obj(get("user"))
    interaction = _obj(get("interaction"))
    return {
        "event_id": event_id,
        "timestamp": micros(moment),
        "feature": feature,
        "action": action,
        "server_version": _obj(source.get("server")).get("version"),
        "client_name": client.get("name"),
        "client_version": client.get("version"),
        "parameters_version": _int(params.get("version"), "parameters.version"),
        "metadata": _metadata(params.get("metadata")),
        "private_metadata": _json(params.get("privateMetadata")),
        "billing_product": billing.get("product"),
        "billing_category": billing.get("category"),
        "user_id": _int(user.get("userId"), "user.userId"),
        "anonymous_user_id": user.get("anonymousUserId"),
        "sams_external_id": user.get("samsExternalId"),
        "feature_flags": _json(_obj(get("featureFlags")).get("flags")),
        "marketing_tracking": _json(get("marketingTracking")),
        "interaction_trace_id": interaction.get("traceId"),
        "interaction_id": interaction.get("interactionId"),
        "country_code": _obj(interaction.get("geolocation")).get("countryCode"),
        "extra": _json(unknown_fields(event)),
        "redacted_fields": redacted or [],
    }


def _set(message: Message, name: str) -> str | None:
    """An optional (proto3 `optional`) string field: its value when set, even empty; else None."""
    return getattr(message, name) if message.HasField(name) else None


def _fields_json(message: Message, present: bool) -> str | None:
    """A message's set fields as a JSON object text with their JSON names (None when unset or empty)."""
    if not present:
        return None
    return _json({field.json_name: value for field, value in message.ListFields()})


@lru_cache(maxsize=4)
def _window_us(now: datetime) -> tuple[int, int]:
    """_window(now) in microseconds since the epoch."""
    low, high = _window(now)
    return micros(low), micros(high)


def message_row(event: Message, now: datetime, redacted: list[str] | None = None) -> dict:
    """event_row() for a telemetrygateway.v1.Event message: the values the JSON path gives for the same
    event written in proto3 JSON (which leaves out fields at their zero value: those columns are NULL)."""
    event_id, feature, action = event.id, event.feature, event.action
    if not (event_id and feature and action and event.HasField("timestamp")):
        raise RowProblem("invalid_event", "id, feature, action and timestamp are required")
    stamp = event.timestamp
    at = stamp_micros(stamp.seconds, stamp.nanos)
    low, high = _window_us(now)
    if not low <= at <= high:
        raise RowProblem("timestamp_out_of_range", f"{at} us is outside BigQuery's partition window")
    source, params = event.source, event.parameters
    client = source.client
    user = event.user
    interaction = event.interaction
    has_params, has_user, has_interaction = event.HasField("parameters"), event.HasField("user"), event.HasField(
        "interaction")
    metadata = None
    if has_params and (params.legacy_metadata or params.metadata):
        merged = dict(params.legacy_metadata)  # int64, exact; metadata (double) wins a clash, as at ingest
        merged.update(params.metadata)
        metadata = _json(merged)
    billing = params.billing_metadata if has_params and params.HasField("billing_metadata") else None
    private = params.private_metadata if has_params and params.HasField("private_metadata") else None
    geolocation = interaction.geolocation if has_interaction and interaction.HasField("geolocation") else None
    flags = event.feature_flags.flags if event.HasField("feature_flags") else None
    return {
        "event_id": event_id,
        "timestamp": at,
        "feature": feature,
        "action": action,
        "server_version": source.server.version or None,
        "client_name": (client.name or None) if source.HasField("client") else None,
        "client_version": _set(client, "version") if source.HasField("client") else None,
        "parameters_version": (params.version or None) if has_params else None,
        "metadata": metadata,
        "private_metadata": _json(struct_json(private)) if private is not None else None,
        "billing_product": (billing.product or None) if billing is not None else None,
        "billing_category": (billing.category or None) if billing is not None else None,
        "user_id": user.user_id if has_user and user.HasField("user_id") else None,
        "anonymous_user_id": _set(user, "anonymous_user_id") if has_user else None,
        "sams_external_id": _set(user, "sams_external_id") if has_user else None,
        "feature_flags": _json(dict(flags)) if flags else None,
        "marketing_tracking": _fields_json(event.marketing_tracking, event.HasField("marketing_tracking")),
        "interaction_trace_id": _set(interaction, "trace_id") if has_interaction else None,
        "interaction_id": _set(interaction, "interaction_id") if has_interaction else None,
        "country_code": (geolocation.country_code or None) if geolocation is not None else None,
        "extra": None,  # fields the .proto does not declare were dropped by ingest
        "redacted_fields": redacted or [],
    }


def event_batch_columns(context: dict, now: datetime) -> dict:
    """Columns every events row of a message shares: the context and inserted_at."""
    return {**context, "inserted_at": micros(now)}


def raw_json(event: object) -> tuple[str, str]:
    """The event as JSON text, exactly (integers beyond 64 bits too, which orjson cannot write; a message in its
    proto3 JSON form), and "" ; for what JSON cannot hold (a message with a NaN in a Struct, a value of no JSON
    type), what could be kept and a note saying what it is."""
    try:
        if isinstance(event, Message):
            return json_format.MessageToJson(event, indent=None), ""
        try:
            return orjson.dumps(event).decode(), ""
        except TypeError:
            return json.dumps(event, ensure_ascii=False, allow_nan=False), ""
    except Exception as exc:  # any event at all: a rejected_events row is always written
        cause = f"{type(exc).__name__}: {exc}"[:200]
    if isinstance(event, Message):
        try:
            wire = base64.b64encode(event.SerializeToString()).decode()
            return orjson.dumps({"protobufBase64": wire}).decode(), (
                f" [raw_event holds the event's protobuf wire bytes, base64: not writable as JSON ({cause})]")
        except Exception as exc:  # a message that cannot even be serialized: keep its text form
            cause = f"{cause}; {type(exc).__name__}: {exc}"[:300]
    return orjson.dumps({"repr": repr(event)[:65536]}).decode(), (
        f" [raw_event holds the event's Python repr: not writable as JSON ({cause})]")


def rejected_row(event: object, index: int, reason: str, detail: str, context: dict, now: datetime,
                 redacted: list[str] | None = None) -> dict:
    """One rejected_events row keeping the raw event (built for any event at all: it never raises)."""
    try:
        event_id = event.get("id") if isinstance(event, dict) else getattr(event, "id", None) or None
    except Exception:  # a value whose id cannot be read: the row has none
        event_id = None
    raw, note = raw_json(event)
    return {
        "rejection_id": f"{context['message_id']}:{index}",
        "reason": reason,
        "detail": detail[:DETAIL_MAX - len(note)] + note,
        "event_id": event_id if isinstance(event_id, str) else None,
        "raw_event": raw,
        "event_index": index,
        **context,
        "rejected_at": micros(now),
        "redacted_fields": redacted or [],
    }


def now_utc() -> datetime:
    """The sink's clock."""
    return datetime.now(UTC)
