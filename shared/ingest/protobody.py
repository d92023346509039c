"""The protobuf body of POST /v1/events: one `RecordEventsBody` (shared/gateway.proto).

Its top-level framing is walked before anything is parsed, so a body with more events than allowed, or
whose framing is broken (a length past the end, a cut varint), is refused without building messages:
an empty event is 2 bytes on the wire and ~136 once parsed. Then upb parses it (UTF-8 checked, depth
bounded). The request metadata is read into the dict `request.parse_identity` takes; the events stay
messages. Fields this gateway's .proto does not declare are dropped before publishing and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from shared.errors import BadRequest, PayloadTooLarge
from shared.gateway_pb2 import RecordEventsBody

METADATA_FIELD, EVENTS_FIELD = 1, 2
# Bytes of parsed messages per body byte, at most: measured here at 24 for a Struct of empty values (the
# densest nesting an event allows); empty events (68) cannot reach it since their number is capped first.
PARSED_BYTES_PER_BYTE = 32
_WIRE_SKIP = {1: 8, 5: 4}  # fixed64, fixed32
# Top-level fields this .proto does not declare (a newer client's) are tolerated, a few: each is a step of the
# walk in Python, and a 4 MiB body of nothing else (2 bytes a field) would take seconds of CPU to walk.
MAX_UNDECLARED_FIELDS = 64


def malformed(detail: str) -> BadRequest:
    """The 400 of a body that is not a RecordEventsBody."""
    return BadRequest("malformed_protobuf", f"body is not a valid RecordEventsBody: {detail}")


def _varint(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise malformed(f"a varint runs past the end of the body ({end} bytes)")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise malformed(f"a varint longer than 10 bytes ends at byte {pos}")


def event_sizes(raw: bytes, max_events: int) -> list[int]:
    """The bytes of each event in the body, from its top-level framing; 400 malformed_protobuf, 413
    too_many_events, or 413 body_too_complex for more than MAX_UNDECLARED_FIELDS undeclared fields.

    Metadata sent twice is refused (protobuf would merge the two, Sourcegraph's gateway refuses it on a
    stream); fields in any order are valid protobuf, so events before the metadata are accepted.
    """
    pos, end, metadata, undeclared = 0, len(raw), 0, 0
    sizes: list[int] = []
    while pos < end:
        start = pos
        tag, pos = _varint(raw, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise malformed(f"field number 0 at byte {start}")
        length = 0
        if wire == 2:
            length, pos = _varint(raw, pos, end)
            pos += length
        elif wire == 0:
            _, pos = _varint(raw, pos, end)
        elif wire in _WIRE_SKIP:
            pos += _WIRE_SKIP[wire]
        else:
            raise malformed(f"field {field} at byte {start} has wire type {wire}")
        if pos > end:
            raise malformed(f"field {field} at byte {start} runs past the end of the body ({end} bytes)")
        if field in (METADATA_FIELD, EVENTS_FIELD) and wire != 2:
            raise malformed(f"field {field} at byte {start} is not length-delimited")
        if field == METADATA_FIELD:
            metadata += 1
            if metadata > 1:
                raise BadRequest("invalid_metadata", "metadata sent twice (RecordEventsBody field 1)")
        elif field == EVENTS_FIELD:
            sizes.append(length)
            if len(sizes) > max_events:
                raise PayloadTooLarge("too_many_events", f"more than {max_events} events")
        else:
            undeclared += 1
            if undeclared > MAX_UNDECLARED_FIELDS:
                raise PayloadTooLarge("body_too_complex", f"more than {MAX_UNDECLARED_FIELDS} top-level fields "
                                      "RecordEventsBody does not declare")
    return sizes


@dataclass
class ProtoRequest:
    """A parsed protobuf body: its metadata (as parse_identity takes it) and its events as messages."""

    metadata: dict
    body: RecordEventsBody
    sizes: list[int]  # each event's bytes on the wire
    unknown_bytes: int  # bytes of undeclared fields dropped from the body (see parse_protobuf)

    @property
    def events(self) -> object:
        """The events (a repeated field of telemetrygateway.v1.Event)."""
        return self.body.events

    @property
    def request_id(self) -> str | None:
        """metadata.request_id, when sent."""
        return self.metadata.get("requestId")


def _present(**fields: str) -> dict:
    return {k: v for k, v in fields.items() if v}


def metadata_dict(body: RecordEventsBody) -> dict:
    """The body's RecordEventsRequestMetadata in the JSON shape (camelCase keys, unset fields left out)."""
    if not body.HasField("metadata"):
        raise BadRequest("invalid_metadata", "metadata must be set (RecordEventsBody field 1)")
    meta = body.metadata
    ident = meta.identifier
    which = ident.WhichOneof("identifier")
    if which == "licensed_instance":
        li = ident.licensed_instance
        value = {"licensedInstance": _present(instanceId=li.instance_id, externalUrl=li.external_url,
                                              licenseKey=li.license_key)}
    elif which == "unlicensed_instance":
        ui = ident.unlicensed_instance
        value = {"unlicensedInstance": _present(instanceId=ui.instance_id, externalUrl=ui.external_url)}
    elif which == "managed_service":
        ms = ident.managed_service
        value = {"managedService": _present(serviceId=ms.service_id, serviceEnvironment=ms.service_environment)}
    else:
        value = {}
    return {**_present(requestId=meta.request_id), "identifier": value}


def parse_protobuf(raw: bytes, max_events: int) -> ProtoRequest:
    """The body as messages, its undeclared fields dropped (and counted); 400/413 as event_sizes raises them."""
    sizes = event_sizes(raw, max_events)
    try:
        body = RecordEventsBody.FromString(raw)
    except DecodeError as exc:
        raise malformed(str(exc) or "it cannot be parsed") from None
    body.DiscardUnknownFields()
    # The body as received minus the body kept: the undeclared fields' bytes (and, for a body not encoded
    # canonically, e.g. a field sent twice, the bytes protobuf merged away).
    return ProtoRequest(metadata_dict(body), body, sizes, len(raw) - body.ByteSize())
