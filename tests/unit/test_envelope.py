"""The Pub/Sub batch message format."""

from __future__ import annotations

import gzip

import orjson
import pytest

from shared.envelope import Batch, Identity, PoisonMessage, decode, encode

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
