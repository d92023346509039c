"""Event -> row transform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from google.protobuf import json_format

from shared.envelope import Batch, Identity
from shared.ingest.batch import Accepted, Limits, check_event
from shared.sink.rows import (
    RowProblem,
    context_columns,
    event_batch_columns,
    event_row,
    message_row,
    micros,
    rejected_row,
)
from shared.telemetrygateway_pb2 import Event
from tests.helpers import make_event
from tests.integration import messages

NOW = datetime(2026, 11, 28, tzinfo=UTC)
BATCH = Batch(Identity("i", None, "fp", ("a",), "prod", "licensed_instance"), "r", "2026-11-28T00:00:00+00:00", [])
CONTEXT = context_columns(BATCH, "m-1", micros(NOW))


def test_micros():
    assert micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005


def test_row_columns():
    row = event_row(make_event(timestamp="2026-11-27T00:00:00Z", user={"userId": "12"}), NOW)
    assert row["timestamp"] == micros(datetime(2026, 11, 27, tzinfo=UTC))
    assert row["user_id"] == 12 and "instance_id" not in row
    assert orjson.loads(row["metadata"]) == {"latencyMs": 120.5, "accepted": 1}
    assert row["extra"] is None
    shared = event_batch_columns(CONTEXT, NOW)
    assert shared["inserted_at"] == micros(NOW) and shared["instance_id"] == "i" and shared["license_tags"] == ["a"]


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"timestamp": "1999-01-01T00:00:00Z"}, "timestamp_out_of_range"),
    ({"timestamp": "2030-01-01T00:00:00Z"}, "timestamp_out_of_range"),
    ({"timestamp": "nope"}, "invalid_event"),
    ({"id": ""}, "invalid_event"),
    ({"user": {"userId": "x"}}, "invalid_value"),
    ({"user": {"userId": 2**64}}, "invalid_value"),
    ({"user": {"userId": True}}, "invalid_value"),
    ({"parameters": {"metadata": {"a": "b"}}}, "invalid_value"),
])
def test_problems(overrides, reason):
    with pytest.raises(RowProblem) as exc:
        event_row(make_event(**overrides), NOW)
    assert exc.value.reason == reason


def test_rejected_row_keeps_raw_event():
    row = rejected_row({"id": "e", "x": 1}, 3, "invalid_event", "why", CONTEXT, NOW)
    assert row["rejection_id"] == "m-1:3" and orjson.loads(row["raw_event"]) == {"id": "e", "x": 1}
    assert row["event_id"] == "e" and row["reason"] == "invalid_event"


def test_shared_columns_concatenate_into_the_same_row():
    from shared.sink.storage_write import TableWriter
    from shared.sink.warehouse.tables import EVENTS

    writer = TableWriter(None, "p", "d", EVENTS, 1)
    row = event_row(make_event(timestamp="2026-11-27T00:00:00Z"), NOW)
    shared = event_batch_columns(CONTEXT, NOW)
    joined = writer.serialize(row, writer.serialize(shared))
    assert writer.message_class.FromString(joined) == writer.message_class(**row, **shared)


def test_integers_beyond_64_bits_are_refused_clearly_and_kept_exactly_in_rejected_rows():
    event = make_event(timestamp="2026-11-27T00:00:00Z", parameters={"privateMetadata": {"n": 2**70}})
    with pytest.raises(RowProblem) as exc:
        event_row(event, NOW)
    assert exc.value.reason == "invalid_value" and "64 bits" in exc.value.detail
    row = rejected_row(event, 0, exc.value.reason, exc.value.detail, CONTEXT, NOW)
    assert str(2**70) in row["raw_event"]


@pytest.mark.parametrize("build", ["full_event", "zero_event", "base_event"])
def test_a_message_gives_the_row_its_proto3_json_gives(build):
    """message_row(Event) == event_row(the same event in proto3 JSON, as ingest publishes it), column by column."""
    now = datetime.now(UTC)
    event = getattr(messages, build)(now.replace(microsecond=250_000))
    limits = Limits(1 << 20, 32, 1 << 16, timedelta(hours=1), timedelta(days=30))
    verdict = check_event(json_format.MessageToDict(event), limits, now)
    assert isinstance(verdict, Accepted)
    as_json = event_row(verdict.event, now, ["marketingTracking"])
    assert message_row(event, now, ["marketingTracking"]) == as_json
    assert as_json["timestamp"] % 1_000_000 == 250_000


def test_a_message_without_a_timestamp_is_a_row_problem():
    with pytest.raises(RowProblem) as exc:
        message_row(Event(id="a", feature="f.g", action="hh"), datetime.now(UTC))
    assert exc.value.reason == "invalid_event"
