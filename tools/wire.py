"""Protobuf bodies and answers of POST /v1/events, built with the protobuf library from the project's .proto.

`RecordEventsBody` (shared/gateway.proto) holds the request metadata (field 1) and the events (field 2),
each a telemetrygateway.v1.Event. Events held as proto3 JSON (camelCase, int64 as strings or numbers, RFC 3339
timestamps) convert with protobuf's own json_format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from shared.gateway_pb2 import RecordEventsAnswer, RecordEventsBody
from shared.telemetrygateway_pb2 import Event, RecordEventsRequestMetadata
from tools.cli import dispatch

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
    """A RecordEventsAnswer as the JSON answer's dict (succeededEvents, failedEvents, warnings)."""
    answer = RecordEventsAnswer.FromString(data)
    return {"succeededEvents": list(answer.succeeded_events),
            "failedEvents": [{"index": f.index, "id": f.id or None, "reason": f.reason, "message": f.message,
                              "retryable": f.retryable} for f in answer.failed_events],
            "warnings": [{"index": w.index, "id": w.id, "code": w.code, "message": w.message}
                         for w in answer.warnings]}


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


def cmd_body(args: argparse.Namespace) -> int:
    """body FILE.jsonl: a RecordEventsBody of those events on stdout (for curl --data-binary)."""
    import orjson

    events = [event_message(orjson.loads(line)) for line in Path(args.file).read_bytes().splitlines() if line.strip()]
    metadata = {"requestId": args.request_id,
                "identifier": {"licensedInstance": {"instanceId": args.instance_id}}}
    sys.stdout.buffer.write(encode_body(metadata, events))
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    """answer: a RecordEventsAnswer (stdin) as JSON, or a google.rpc.Status error's reason code."""
    import orjson

    data = sys.stdin.buffer.read()
    reason = error_reason(data) if args.error else None
    print(reason if args.error else orjson.dumps(decode_answer(data)).decode())
    return 0 if reason or not args.error else 1


def parser() -> argparse.ArgumentParser:
    """The CLI."""
    p = argparse.ArgumentParser(prog="python -m tools.wire", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("body", help="JSONL events -> a protobuf RecordEventsBody on stdout")
    b.add_argument("file")
    b.add_argument("--instance-id", required=True)
    b.add_argument("--request-id", default="curl-1")
    b.set_defaults(run=cmd_body)
    a = sub.add_parser("answer", help="a protobuf answer on stdin -> JSON (or --error: the reason code)")
    a.add_argument("--error", action="store_true")
    a.set_defaults(run=cmd_answer)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
