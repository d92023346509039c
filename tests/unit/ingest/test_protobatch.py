"""Per-event checks on Event messages give the JSON path's verdict for the same event in proto3 JSON."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.gateway_pb2 import RecordEventsBody
from shared.ingest.batch import Accepted, Limits, check_event
from shared.ingest.protobatch import check_message, time_window, validate_messages
from shared.telemetrygateway_pb2 import Event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_event_bytes=64 * 1024, max_depth=8, max_string_chars=16_384, max_future=timedelta(hours=1),
                max_age=timedelta(days=30))
TEXT = st.one_of(st.text(max_size=6), st.sampled_from(["", "x" * 129, "y" * 257, "z" * 4097, "w" * 16_385]))
NAME = st.sampled_from(["cody.completion", "a-b.c", "", "Cody", "cody1", "x", "a" * 65])
JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False, width=32)
                    | st.text(max_size=4),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                    max_leaves=12)
SECONDS = st.integers(int((NOW - timedelta(days=40)).timestamp()), int((NOW + timedelta(hours=3)).timestamp()))


@st.composite
def events(draw: st.DrawFn) -> Event:
    """An Event with any subset of its fields set, values at and beyond every limit."""
    event = Event(id=draw(TEXT), feature=draw(NAME), action=draw(NAME))
    if draw(st.integers(0, 9)):  # mostly set: a missing timestamp is refused before the rest is looked at
        event.timestamp.seconds, event.timestamp.nanos = draw(SECONDS), draw(st.integers(0, 999_999_999))
    if draw(st.booleans()):
        event.source.server.version = draw(TEXT)
    if draw(st.booleans()):
        event.source.client.name = draw(TEXT)
        if draw(st.booleans()):
            event.source.client.version = draw(TEXT)
    if draw(st.booleans()):
        params = event.parameters
        params.version = draw(st.integers(-(2**31), 2**31 - 1))
        params.metadata.update(draw(st.dictionaries(st.text(max_size=3), st.floats(), max_size=3)))
        params.legacy_metadata.update(draw(st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1),
                                                           max_size=3)))
        if draw(st.booleans()):
            params.private_metadata.update(draw(st.dictionaries(st.text(max_size=3), JSON, max_size=3)))
        if draw(st.booleans()):
            params.billing_metadata.product = draw(TEXT)
    if draw(st.booleans()):
        event.user.user_id = draw(st.integers(-(2**63), 2**63 - 1))
        event.user.anonymous_user_id = draw(TEXT)
    if draw(st.booleans()):
        event.feature_flags.flags.update(draw(st.dictionaries(st.text(max_size=3), TEXT, max_size=2)))
    if draw(st.booleans()):
        event.marketing_tracking.referrer = draw(TEXT)
    if draw(st.booleans()):
        event.interaction.geolocation.country_code = draw(TEXT)
    return event


def json_verdict(event: Event) -> str | None:
    verdict = check_event(json_format.MessageToDict(event), LIMITS, NOW)
    return None if isinstance(verdict, Accepted) else verdict.reason


def message_verdict(event: Event) -> str | None:
    verdict = check_message(event, event.ByteSize(), LIMITS, time_window(LIMITS, NOW))
    return None if verdict is None else verdict.reason


@settings(max_examples=1000, deadline=None)
@given(events())
def test_same_verdict_as_the_json_path(event):
    assert message_verdict(event) == json_verdict(event), json_format.MessageToDict(event)


@settings(max_examples=500, deadline=None)
@given(events())
def test_same_warnings_and_time_span_as_the_json_path(event):
    """An accepted event warns alike in both encodings (its proto3 JSON holds no undeclared field)."""
    verdict = check_event(json_format.MessageToDict(event), LIMITS, NOW)
    result = validate_messages(RecordEventsBody(events=[event]).events, [event.ByteSize()], LIMITS, NOW)
    if isinstance(verdict, Accepted):
        assert [w.code for w in result.warnings] == list(verdict.warnings)
        assert result.earliest == result.latest == verdict.at
    else:
        assert result.warnings == [] and result.earliest is None


def test_warnings_of_a_message():
    event = nested(1)
    event.timestamp.nanos = 1_500  # 1.5 microseconds
    event.parameters.metadata["a"] = 1.0
    event.parameters.legacy_metadata.update({"a": 2, "b": 3})
    wire = RecordEventsBody(events=[event]).SerializeToString() + b"\x12\x03\xf8\x07\x01"  # + an event: field 127
    body = RecordEventsBody.FromString(wire)
    body.DiscardUnknownFields()
    sizes = [event.ByteSize(), 3]
    result = validate_messages(body.events, sizes, LIMITS, NOW, had_unknown=True)
    assert [(w.index, w.code) for w in result.warnings] == [(0, "legacy_metadata_overridden"),
                                                             (0, "timestamp_truncated")]
    assert [f.index for f in result.failures] == [1]  # the second event is empty: refused, so no warning
    unknown = nested(1)
    sized = len(unknown.SerializeToString()) + 3  # as if it had carried 3 bytes of an undeclared field
    result = validate_messages(RecordEventsBody(events=[unknown]).events, [sized], LIMITS, NOW, had_unknown=True)
    assert [w.code for w in result.warnings] == ["unknown_fields_dropped"]


def nested(levels: int) -> Event:
    """A valid event whose private metadata nests `levels` lists below it."""
    event = Event(id="a", feature="cody.chat", action="executed")
    event.timestamp.seconds = int(NOW.timestamp())
    event.source.server.version = "1"
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    event.parameters.private_metadata.update({"k": value})
    return event


@pytest.mark.parametrize("levels", [LIMITS.max_depth - 4, LIMITS.max_depth - 3, LIMITS.max_depth - 2])
def test_nesting_limit_agrees(levels):
    assert message_verdict(nested(levels)) == json_verdict(nested(levels))


def test_refused_events_leave_the_batch_and_duplicates_are_refused():
    ok, bad = nested(1), Event(id="b")
    batch = RecordEventsBody(events=[ok, bad, ok])
    result = validate_messages(batch.events, [e.ByteSize() for e in batch.events], LIMITS, NOW)
    assert result.ids == ["a"] and [(f.index, f.id, f.reason) for f in result.failures] == [
        (1, "b", "invalid_event"), (2, "a", "duplicate_id")]
    assert [e.id for e in batch.events] == ["a"]


@pytest.mark.parametrize("values", [{"x": math.nan}, {"x": math.inf, "y": -math.inf},
                                    {"x": 1e308, "y": 1e308, "z": -math.inf}])
def test_a_non_finite_metadata_value_is_refused(values):
    """Whatever fsum makes of them: nan, inf + -inf (ValueError), an overflow (OverflowError)."""
    event = nested(1)
    event.parameters.metadata.update(values)
    assert message_verdict(event) == "invalid_event" == json_verdict(event)


def test_a_non_finite_struct_number_becomes_null_with_a_warning_and_the_event_is_accepted():
    event = nested(1)
    event.parameters.private_metadata.update({"nan": math.nan, "ok": 1, "list": [math.inf, -math.inf]})
    body = RecordEventsBody(events=[event, nested(1)])
    body.events[1].id = "other"
    result = validate_messages(body.events, [e.ByteSize() for e in body.events], LIMITS, NOW)
    assert result.ids == [event.id, "other"] and result.failures == []
    assert [(w.index, w.code) for w in result.warnings] == [(0, "non_finite_nulled")]
    kept = json_format.MessageToDict(body.events[0].parameters.private_metadata)  # printable now
    assert kept == {"k": [], "nan": None, "ok": 1.0, "list": [None, None]}


def test_a_struct_the_policy_removes_is_not_looked_at_for_non_finite_numbers():
    event = nested(1)
    event.parameters.private_metadata.update({"nan": math.nan})
    body = RecordEventsBody(events=[event])
    result = validate_messages(body.events, [event.ByteSize()], LIMITS, NOW,
                               redact=lambda e: [e.parameters.ClearField("private_metadata") or
                                                 "parameters.privateMetadata"])
    assert [w.code for w in result.warnings] == ["private_metadata_removed"]
