"""Protobuf bodies and answers of POST /v1/events, built with the protobuf library from the project's .proto.

`RecordEventsBody` (shared/gateway.proto) holds the request metadata (field 1) and the events (field 2),
each a telemetrygateway.v1.Event. Events held as proto3 JSON (camelCase, int64 as strings or numbers, RFC 3339
timestamps) convert with protobuf's own json_format.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from shared.gateway_pb2 import RecordEventsAnswer, RecordEventsBody
from shared.telemetrygateway_pb2 import Event, RecordEventsRequestMetadata

CONTENT_TYPE = "application/x-protobuf"


class NotEncodable(ValueError):
    """A JSON event that has no protobuf form (a value of the wrong type for its field)."""


def event_message(event: dict) -> Event:
    """A JSON event as an Event message (fields the .proto does not declare are left out)."""
    try:
        return json_format.ParseDict(event, Event(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise NotEncodable(str(exc)) from None


def encode_body(metadata: dict, events: list[Event | bytes]) -> bytes:
    """The body: metadata as JSON (requestId, identifier) and events as messages or their serialized bytes."""
    body = RecordEventsBody(metadata=json_format.ParseDict(metadata, RecordEventsRequestMetadata()))
    for event in events:
        if isinstance(event, bytes):
            body.events.add().MergeFromString(event)
        else:
            body.events.append(event)
    return body.SerializeToString()


def decode_answer(data: bytes) -> dict:
    """A RecordEventsAnswer as the JSON answer's dict (succeededEvents, failedEvents)."""
    answer = RecordEventsAnswer.FromString(data)
    return {"succeededEvents": list(answer.succeeded_events),
            "failedEvents": [{"index": f.index, "id": f.id or None, "reason": f.reason, "message": f.message,
                              "retryable": f.retryable} for f in answer.failed_events]}


def error_reason(data: bytes) -> str | None:
    """The reason code of a google.rpc.Status error answer (its ErrorInfo), if it is one."""
    try:
        status = status_pb2.Status.FromString(data)
    except DecodeError:  # not a Status (a proxy's answer): the caller falls back to the HTTP status
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return None
