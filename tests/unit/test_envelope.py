"""The Pub/Sub batch message format."""

from __future__ import annotations

import gzip

import orjson
import pytest

from shared.envelope import (
    Batch,
    Identity,
    PoisonMessage,
    decode,
    decode_requests,
    encode,
    encode_requests,
    is_requests,
)

IDENTITY = Identity("inst", "https://x", "fp", ("dev",), "dev", "licensed_instance")


def test_roundtrip_and_attributes():
    batch = Batch(IDENTITY, "req", "2026-01-01T00:00:00+00:00", [{"id": "a"}, {"id": "b"}])
    data, attrs = encode(batch)
    assert attrs == {"schemaVersion": "1", "encoding": "gzip", "contentType": "application/json",
                     "instanceId": "inst", "environment": "dev", "eventCount": "2", "requestId": "req"}
    assert decode(data, attrs) == batch


@pytest.mark.parametrize(("data", "attrs"), [
    (b"\x00\x01", {"encoding": "gzip"}),
    (b"{}", {"encoding": "identity"}),
    (b"[]", {}),
    (gzip.compress(orjson.dumps({"schemaVersion": 2})), {"encoding": "gzip"}),
    (orjson.dumps({"schemaVersion": 1, "events": []}), {}),
    (orjson.dumps({"schemaVersion": 1, "identity": {"instanceId": "i", "environment": "dev"},
                   "receivedAt": "t", "events": {}}), {}),
    (b"{}", {"encoding": "zstd"}),
])
def test_poison(data, attrs):
    with pytest.raises(PoisonMessage):
        decode(data, attrs)


def test_corrupt_gzip_is_poison_not_an_outage():
    data, attrs = encode(Batch(IDENTITY, "r", "2026-01-01T00:00:00+00:00", [{"id": "a"}] * 50))
    broken = bytearray(data)
    for i in range(12, len(broken) - 8, 7):
        broken[i] ^= 0xA5  # ISA-L raises its own error type for this, not zlib.error
    with pytest.raises(PoisonMessage, match="undecodable"):
        decode(bytes(broken), attrs)
    with pytest.raises(PoisonMessage, match="truncated"):
        decode(data[: len(data) // 2], attrs)


def test_gzip_bomb_is_poison_without_inflating_it_all():
    from shared.envelope import MAX_MESSAGE_BODY

    bomb = gzip.compress(b" " * (MAX_MESSAGE_BODY + 10), 9)
    with pytest.raises(PoisonMessage, match="over"):
        decode(bomb, {"encoding": "gzip"})


def test_integers_beyond_64_bits_survive_decoding():
    body = ('{"schemaVersion": 1, "identity": {"instanceId": "i", "environment": "dev"}, "receivedAt": "t", '
            f'"events": [{{"id": "a", "n": {2**70}}}]}}').encode()
    assert decode(body, {"encoding": "identity"}).events == [{"id": "a", "n": 2**70}]


def test_protobuf_batch_roundtrip_beside_json():
    """schemaVersion 2 carries the events as messages; decode() tells the versions apart by attribute."""
    from shared.envelope import PROTOBUF_WIRE, encode_protobuf
    from shared.gateway_pb2 import RecordEventsBody

    body = RecordEventsBody()
    body.events.add(id="e1", feature="a.b", action="cc")
    body.events.add(id="e2", feature="a.b", action="cc")
    identity = Identity("inst", None, "fp", ("dev",), "dev", "licensed_instance", caller_email=None)
    batch = Batch(identity, "req", "2026-11-28T00:00:00+00:00", body.events, [["marketingTracking"], []])
    data, attributes = encode_protobuf(batch, body.SerializeToString())
    assert (attributes["schemaVersion"], attributes["contentType"], attributes["eventCount"]) == (
        "2", "application/x-protobuf", "2")
    decoded = decode(data, attributes)
    assert decoded.wire == PROTOBUF_WIRE and decoded.identity == identity
    assert [e.id for e in decoded.events] == ["e1", "e2"] and decoded.redacted == [["marketingTracking"], []]
    assert (decoded.request_id, decoded.received_at) == ("req", "2026-11-28T00:00:00+00:00")
    old = decode(*encode(Batch(identity, "req", "2026-11-28T00:00:00+00:00", [{"id": "j"}])))
    assert old.wire == "json" and old.events == [{"id": "j"}]


@pytest.mark.parametrize("payload", [b"\xff\xff", b"\x18\x01"])  # not protobuf; schema_version 1, no identity
def test_a_broken_protobuf_batch_is_poison(payload):
    with pytest.raises(PoisonMessage):
        decode(gzip.compress(payload), {"schemaVersion": "2", "encoding": "gzip"})


def test_request_log_roundtrip_is_told_apart_from_batches():
    rows = [{"record_id": "a", "received_at": 1, "status": 401, "outcome": "refused"}]
    data, attributes = encode_requests(rows)
    assert is_requests(attributes) and attributes["rowCount"] == "1" and "eventCount" not in attributes
    assert decode_requests(data, attributes) == rows
    _, batch_attributes = encode(Batch(IDENTITY, "r", "2026-01-01T00:00:00+00:00", []))
    assert not is_requests(batch_attributes)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"schemaVersion": 2, "requests": []}',
                                  b'{"schemaVersion": 1, "requests": [1]}', b'{"schemaVersion": 1}'])
def test_a_broken_request_log_is_poison(body):
    with pytest.raises(PoisonMessage):
        decode_requests(body, {"recordType": "requests", "encoding": "identity"})
