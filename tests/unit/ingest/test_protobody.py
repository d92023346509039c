"""The protobuf body: framing walked before parsing, metadata in the JSON shape, unknown fields dropped."""

from __future__ import annotations

import pytest

from shared.errors import BadRequest, PayloadTooLarge
from shared.gateway_pb2 import RecordEventsBody
from shared.ingest.protobody import MAX_UNDECLARED_FIELDS, event_sizes, metadata_dict, parse_protobuf
from shared.telemetrygateway_pb2 import Event, RecordEventsRequestMetadata


def body(*events: Event, metadata: RecordEventsRequestMetadata | None = None) -> bytes:
    message = RecordEventsBody(events=events)
    if metadata is not None:
        message.metadata.CopyFrom(metadata)
    return message.SerializeToString()


META = RecordEventsRequestMetadata(request_id="r")
META.identifier.licensed_instance.instance_id = "inst"


def test_sizes_are_each_event_s_bytes():
    events = [Event(id="a"), Event(id="bb", feature="x.y")]
    assert event_sizes(body(*events, metadata=META), 10) == [e.ByteSize() for e in events]


def test_more_events_than_allowed_are_refused_before_parsing():
    with pytest.raises(PayloadTooLarge) as exc:
        event_sizes(b"\x12\x00" * 6, 5)
    assert exc.value.code == "too_many_events"


def test_undeclared_top_level_fields_beyond_a_few_are_refused_before_parsing():
    """Each costs a step of the walk in Python: a body of nothing else would take seconds to walk."""
    few = body(metadata=META) + b"\x18\x00" * MAX_UNDECLARED_FIELDS
    assert event_sizes(few, 10) == [] and parse_protobuf(few, 10).unknown_bytes == 2 * MAX_UNDECLARED_FIELDS
    with pytest.raises(PayloadTooLarge) as exc:
        event_sizes(few + b"\x1d\x00\x00\x00\x00", 10)  # one more (a fixed32)
    assert exc.value.code == "body_too_complex"


@pytest.mark.parametrize("raw", [b"\x12", b"\x12\x05ab", b"\x0a\xff", b"\x12" + b"\xff" * 10 + b"\x01", b"\x00\x01",
                                 b"\x0b\x0c", b"\x10\x01", b"\x09" + b"\x00" * 3])
def test_broken_framing_is_malformed(raw):
    with pytest.raises(BadRequest) as exc:
        event_sizes(raw, 10)
    assert exc.value.code == "malformed_protobuf"


def test_metadata_twice_is_refused_and_events_first_are_fine():
    meta = META.SerializeToString()
    twice = b"\x0a" + bytes([len(meta)]) + meta
    with pytest.raises(BadRequest) as exc:
        event_sizes(twice * 2, 10)
    assert exc.value.code == "invalid_metadata"
    events_first = body(Event(id="a")) + twice
    parsed = parse_protobuf(events_first, 10)
    assert parsed.metadata == {"requestId": "r", "identifier": {"licensedInstance": {"instanceId": "inst"}}}
    assert [e.id for e in parsed.events] == ["a"]


def test_invalid_utf8_is_malformed():
    with pytest.raises(BadRequest) as exc:
        parse_protobuf(body(metadata=META) + b"\x12\x03\x0a\x01\xff", 10)
    assert exc.value.code == "malformed_protobuf"


def test_unknown_fields_are_dropped_and_counted():
    raw = body(metadata=META) + b"\x12\x06\x0a\x01a\xf8\x07\x2a" + b"\x98\x06\x01"
    parsed = parse_protobuf(raw, 10)
    assert parsed.unknown_bytes == 6  # field 127 in the event (3 bytes), field 99 at the top (3 bytes)
    assert parsed.body.events[0].SerializeToString() == Event(id="a").SerializeToString()


@pytest.mark.parametrize(("identifier", "expected"), [
    ({"licensed_instance": {"license_key": "k", "instance_id": "i", "external_url": "u"}},
     {"licensedInstance": {"licenseKey": "k", "instanceId": "i", "externalUrl": "u"}}),
    ({"unlicensed_instance": {"instance_id": "i"}}, {"unlicensedInstance": {"instanceId": "i"}}),
    ({"managed_service": {"service_id": "s", "service_environment": "prod"}},
     {"managedService": {"serviceId": "s", "serviceEnvironment": "prod"}}),
    ({}, {}),
])
def test_metadata_in_the_json_shape(identifier, expected):
    message = RecordEventsBody(metadata=RecordEventsRequestMetadata(identifier=identifier))
    assert metadata_dict(message) == {"identifier": expected}


def test_no_metadata_is_invalid():
    with pytest.raises(BadRequest) as exc:
        metadata_dict(RecordEventsBody())
    assert exc.value.code == "invalid_metadata"
