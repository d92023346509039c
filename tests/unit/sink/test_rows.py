"""Event -> row transform."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.envelope import Batch, Identity
from shared.ingest.batch import Accepted, Limits, check_event
from shared.sink.rows import (
    DETAIL_MAX,
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


def nan_event() -> Event:
    """A valid event whose private metadata holds NaN and both infinities, nested."""
    event = messages.base_event(NOW - timedelta(hours=1))
    event.parameters.private_metadata.update({"ok": 1, "nan": math.nan, "deep": {"list": [math.inf, "a"]}})
    event.parameters.private_metadata["deep"]["neg"] = -math.inf
    return event


def test_a_message_s_non_finite_struct_numbers_are_stored_as_null():
    row = message_row(nan_event(), NOW)
    assert orjson.loads(row["private_metadata"]) == {"ok": 1.0, "nan": None, "deep": {"list": [None, "a"],
                                                                                        "neg": None}}


def test_a_message_json_cannot_hold_is_kept_as_its_wire_bytes_in_rejected_events():
    event = nan_event()
    row = rejected_row(event, 2, "invalid_event", "why", CONTEXT, NOW)
    kept = orjson.loads(row["raw_event"])
    assert Event.FromString(base64.b64decode(kept["protobufBase64"])) == event
    assert row["detail"].startswith("why [raw_event holds the event's protobuf wire bytes, base64")
    assert "Fail to serialize" in row["detail"] and row["event_id"] == event.id


class Hostile:
    """An object whose every attribute read fails."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)

    def __repr__(self) -> str:
        return "Hostile()"


values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text() | st.binary()
                      | st.builds(Hostile), lambda inner: st.lists(inner) | st.dictionaries(
                          st.text() | st.integers(), inner) | st.tuples(inner), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(event=values, detail=st.text(max_size=2000))
def test_building_a_rejected_row_never_fails_and_the_table_takes_it(event, detail):
    from shared.sink.storage_write import TableWriter
    from shared.sink.warehouse.tables import REJECTED

    row = rejected_row(event, 0, "invalid_event", detail, CONTEXT, NOW)
    assert len(row["detail"]) <= DETAIL_MAX
    orjson.loads(row["raw_event"])  # always JSON text (PARSE_JSON works on every row)
    TableWriter(None, "p", "d", REJECTED, 1).serialize(row)
