"""The Storage Write writer: descriptors from table definitions, and how it treats AppendRows answers."""

from __future__ import annotations

import pytest

from shared.sink.storage_write import TableWriter
from shared.sink.tables import EVENTS, TABLES


def test_descriptor_matches_every_table():
    for table in TABLES:
        writer = TableWriter(client=None, project="p", dataset="d", table=table, timeout_s=1)
        assert [f.name for f in writer.descriptor.field] == [c.name for c in table.columns]
    writer = TableWriter(client=None, project="p", dataset="d", table=EVENTS, timeout_s=1)
    assert writer.stream == "projects/p/datasets/d/tables/events/streams/_default"
    row = writer.message_class.FromString(
        writer.serialize({"event_id": "x", "license_tags": ["a"], "timestamp": 5, "metadata": None}))
    assert (row.event_id, list(row.license_tags), row.timestamp, row.HasField("metadata")) == ("x", ["a"], 5, False)


def test_append_without_any_response_is_an_error():
    class Silent:
        def append_rows(self, requests, timeout, metadata):
            return iter([])

    writer = TableWriter(client=Silent(), project="p", dataset="d", table=EVENTS, timeout_s=1)
    with pytest.raises(RuntimeError, match="no response"):
        writer.append([writer.serialize({"event_id": "x"})])
