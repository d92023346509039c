"""Reading the Pub/Sub message out of a pushed CloudEvent, and the proto writer's descriptor."""

from __future__ import annotations

import base64

import pytest

from shared.envelope import PoisonMessage
from shared.sink import pushed_message
from shared.storage_write import TableWriter
from shared.tables import EVENTS, TABLES


def test_pushed_message_both_spellings():
    data = base64.b64encode(b"abc").decode()
    a = pushed_message({"message": {"data": data, "messageId": "1", "publishTime": "t", "attributes": {"k": "v"}}})
    b = pushed_message({"message": {"data": data, "message_id": "1", "publish_time": "t", "attributes": {"k": "v"}}})
    assert a == b and a.data == b"abc" and a.attributes == {"k": "v"}


@pytest.mark.parametrize("data", [None, {}, {"message": "x"}, {"message": {"data": "!!", "messageId": "1"}},
                                  {"message": {"data": "YQ=="}}])
def test_pushed_message_poison(data):
    with pytest.raises(PoisonMessage):
        pushed_message(data)


def test_descriptor_matches_every_table():
    for table in TABLES:
        writer = TableWriter(client=None, project="p", dataset="d", table=table, timeout_s=1)
        assert [f.name for f in writer.descriptor.field] == [c.name for c in table.columns]
    writer = TableWriter(client=None, project="p", dataset="d", table=EVENTS, timeout_s=1)
    assert writer.stream == "projects/p/datasets/d/tables/events/streams/_default"
    assert writer.serialize({"event_id": "x", "license_tags": ["a"], "timestamp": 5, "metadata": None})


def test_append_without_any_response_is_an_error():
    class Silent:
        def append_rows(self, requests, timeout, metadata):
            return iter([])

    writer = TableWriter(client=Silent(), project="p", dataset="d", table=EVENTS, timeout_s=1)
    with pytest.raises(RuntimeError, match="no response"):
        writer.append([writer.serialize({"event_id": "x"})])


def test_null_message_is_poison():
    from shared.config import Config
    from shared.sink import Sink

    with pytest.raises(PoisonMessage):
        Sink(Config.from_env({"TELEMETRY_ENV": "dev"})).handle({"message": None})
