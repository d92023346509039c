"""Per-event validation rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from shared.ingest.batch import (
    WARNINGS,
    Accepted,
    Limits,
    Refusal,
    check_event,
    truncated_below_micros,
    validate_batch,
)
from shared.ingest.schema import known_fields
from shared.timestamps import micros
from tests.helpers import make_event

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LIMITS = Limits(max_event_bytes=4096, max_depth=6, max_string_chars=512,
                max_future=timedelta(hours=1), max_age=timedelta(days=365))


def ev(**overrides) -> dict:
    return make_event(timestamp="2026-06-01T11:00:00.123456789Z", **overrides)


def reason(event) -> str:
    verdict = check_event(event, LIMITS, NOW)
    return verdict.reason if isinstance(verdict, Refusal) else ""


def test_valid_event_unchanged_with_its_time_and_warnings():
    event = ev(unknownTopLevel={"kept": True})
    assert check_event(event, LIMITS, NOW) == Accepted(
        event, orjson.dumps(event), micros(datetime(2026, 6, 1, 11, 0, 0, 123456, tzinfo=UTC)),
        ("unknown_fields_kept", "timestamp_truncated"))


def test_an_event_changed_by_nothing_has_no_warnings():
    verdict = check_event(make_event(timestamp="2026-06-01T11:00:00.123456000Z"), LIMITS, NOW)
    assert verdict.warnings == ()


@pytest.mark.parametrize(("stamp", "truncated"), [
    ("2026-06-01T11:00:00Z", False), ("2026-06-01T11:00:00.123456Z", False),
    ("2026-06-01T11:00:00.123456+02:00", False), ("2026-06-01T11:00:00.1234560000Z", False),
    ("2026-06-01T11:00:00.1234567Z", True), ("2026-06-01T11:00:00.000000001+00:00", True),
])
def test_truncated_below_micros(stamp, truncated):
    assert truncated_below_micros(stamp) is truncated


def test_legacy_metadata_over_a_clash_is_a_warning_and_metadata_wins():
    event = ev(parameters={"metadata": {"a": 1.5}, "legacyMetadata": {"a": "2", "b": "3"}})
    verdict = check_event(event, LIMITS, NOW)
    assert verdict.event["parameters"]["metadata"] == {"a": 1.5, "b": 3}
    assert "legacy_metadata_overridden" in verdict.warnings
    assert "legacy_metadata_overridden" not in check_event(
        ev(parameters={"legacyMetadata": {"b": "3"}}), LIMITS, NOW).warnings


def test_batch_warnings_name_the_accepted_event_and_policy_removals():
    events = [ev(extra="x"), ev(id="bad", feature="Bad"), ev()]
    result = validate_batch(events, LIMITS, NOW, lambda e: (e, ["parameters.privateMetadata"]))
    assert [w.as_json()["code"] for w in result.warnings if w.index == 0] == [
        "unknown_fields_kept", "timestamp_truncated", "private_metadata_removed"]
    assert {w.index for w in result.warnings} == {0, 2}
    assert result.warnings[0].as_json() == {"index": 0, "id": events[0]["id"], "code": "unknown_fields_kept",
                                            "message": WARNINGS["unknown_fields_kept"]}
    assert result.earliest == result.latest == micros(datetime(2026, 6, 1, 11, 0, 0, 123456, tzinfo=UTC))


@pytest.mark.parametrize("name", ["cody.completion", "blob.codeintel", "search-results.viewed", "aB"])
def test_names_accepted(name):
    assert reason(ev(feature=name, action=name)) == ""


@pytest.mark.parametrize("name", ["Cody", "cody_completion", "cody1", "a", "", ".x", "x" * 65, 5, None, "cody\n"])
def test_names_refused(name):
    assert reason(ev(feature=name)) == "invalid_event"
    assert reason(ev(action=name)) == "invalid_event"


@pytest.mark.parametrize("missing", ["id", "timestamp", "feature", "action", "source"])
def test_required_fields(missing):
    event = ev()
    del event[missing]
    assert reason(event) == "invalid_event"


def test_server_version_required():
    assert reason(ev(source={"client": {"name": "x"}})) == "invalid_event"
    assert reason(ev(source={"server": {"version": ""}})) == "invalid_event"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-06-01T12:59:00Z", ""),
        ("2026-06-01T13:01:00Z", "timestamp_in_future"),
        ("2025-06-02T00:00:00+02:00", ""),
        ("2025-05-31T00:00:00Z", "timestamp_too_old"),
        ("2026-06-01T12:00:00", "invalid_event"),
        ("yesterday", "invalid_event"),
        (1717243200, "invalid_event"),
    ],
)
def test_timestamp_window(timestamp, expected):
    assert reason(make_event(timestamp=timestamp)) == expected


@pytest.mark.parametrize("metadata", [{"a": "x"}, {"a": None}, {"a": [1]}, {"a": float("nan")}, [1]])
def test_metadata_numeric_only(metadata):
    assert reason(ev(parameters={"metadata": metadata})) == "invalid_event"


def test_legacy_metadata_merged_metadata_wins():
    event = ev(parameters={"metadata": {"a": 1.5}, "legacyMetadata": {"a": "9", "b": 2}, "version": 2})
    verdict = check_event(event, LIMITS, NOW)
    assert isinstance(verdict, Accepted)
    assert orjson.loads(verdict.json) == verdict.event
    assert verdict.event["parameters"] == {"metadata": {"a": 1.5, "b": 2.0}, "version": 2}
    assert "legacyMetadata" in event["parameters"]  # the caller's dict is not modified


def test_limits():
    assert reason(ev(extra="x" * 5000)) == "event_too_large"
    assert reason(ev(note="x" * 600)) == "event_too_complex"
    deep: dict = {}
    cur = deep
    for _ in range(8):
        cur["d"] = {}
        cur = cur["d"]
    assert reason(ev(deep=deep)) == "event_too_complex"


def test_batch_duplicates_and_order():
    a, b = ev(), ev()
    result = validate_batch([a, {"id": "x"}, dict(a), b, 7], LIMITS, NOW)
    assert [e["id"] for e in result.accepted] == [a["id"], b["id"]]
    assert [(f.index, f.reason) for f in result.failures] == [
        (1, "invalid_event"), (2, "duplicate_id"), (4, "invalid_event")]


def test_invalid_first_copy_does_not_block_valid_second():
    a = ev()
    bad = dict(a, feature="BAD")
    result = validate_batch([bad, a], LIMITS, NOW)
    assert [e["id"] for e in result.accepted] == [a["id"]]


def test_known_fields_tree():
    tree = known_fields()
    assert tree["source"]["server"] == {"version": None}
    assert tree["interaction"]["geolocation"] == {"countryCode": None}
    assert tree["id"] is None


def test_nesting_beyond_the_serializer_is_refused_not_a_crash():
    deep: list = []
    for _ in range(300):
        deep = [deep]
    assert reason(ev(deep=deep)) == "event_too_complex"
