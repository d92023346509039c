"""The dead-letter redrive's decisions (tools/deadletter.py): durations, attributes, poison reasons, ages, verdicts."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from shared.envelope import encode_requests
from tests.helpers import DEAD_LETTER_ATTRIBUTES, batch_message
from tools.deadletter import (
    DECODABLE,
    age_bucket,
    classify,
    decide,
    parse_duration,
    republish_attributes,
)

REQUESTS = {"recordType": "requests", "encoding": "identity"}


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)), ("1w", timedelta(days=7)), ("1h30m", timedelta(hours=1, minutes=30)),
    (" 2H ", timedelta(hours=2)), ("0s", timedelta(0)),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "-1h", "2x", "1.5h", "2 h", "2h-", "two hours"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_only_pub_sub_s_dead_letter_attributes_are_dropped():
    kept = {"encoding": "gzip", "eventCount": "3", "requestId": "", "deadLetter": "mine",
            "cloudPubSubDeadLetterSourceDeliveryCount": "not Pub/Sub's (case differs)", "CloudPubSubOther": "x"}
    assert republish_attributes({**kept, **DEAD_LETTER_ATTRIBUTES}) == kept
    assert republish_attributes({}) == {}


def _poison_cases() -> list[tuple[str, bytes, dict]]:
    data, attributes = batch_message()
    raw = lambda doc: orjson.dumps(doc)  # noqa: E731
    head = {"schemaVersion": 1, "receivedAt": "2026-11-01T00:00:00Z",
            "identity": {"instanceId": "i", "environment": "dev"}, "events": []}
    return [
        ("undecodable_payload", b"\x1f\x8bnot-gzip", {"encoding": "gzip"}),
        ("undecodable_payload", data[: len(data) // 2], attributes),  # truncated gzip
        ("undecodable_payload", b"", {}),
        ("undecodable_payload", b"{not json", {"encoding": "identity"}),
        ("unknown_encoding", data, {**attributes, "encoding": "br"}),
        ("unsupported_schema_version", raw({**head, "schemaVersion": 2}), {}),
        ("unsupported_schema_version", raw([1, 2]), {}),
        ("envelope_incomplete", raw({k: v for k, v in head.items() if k != "identity"}), {}),
        ("events_not_a_list", raw({**head, "events": {"a": 1}}), {}),
        ("redacted_fields_mismatch", raw({**head, "events": [{}], "redactedFields": [[], []]}), {}),
        ("envelope_unusable", raw({**head, "receivedAt": "yesterday"}), {}),
        ("undecodable_request_log", b"{not json", REQUESTS),
        ("unsupported_request_log_version", raw({"schemaVersion": 9, "requests": []}), REQUESTS),
        ("request_log_incomplete", raw({"schemaVersion": 1, "requests": [1]}), REQUESTS),
    ]


@pytest.mark.parametrize(("reason", "data", "attributes"), _poison_cases())
def test_messages_that_would_only_fail_again_are_named_by_reason(reason, data, attributes):
    assert classify(data, attributes) == reason


def test_a_real_batch_is_decodable_with_or_without_the_dead_letter_attributes():
    data, attributes = batch_message(3)
    assert classify(data, attributes) == DECODABLE
    assert classify(data, {**attributes, **DEAD_LETTER_ATTRIBUTES}) == DECODABLE


def test_a_request_log_message_is_decodable():
    data, attributes = encode_requests([{"record_id": "r", "received_at": 1, "outcome": "refused", "status": 401}])
    assert classify(data, {**attributes, **DEAD_LETTER_ATTRIBUTES}) == DECODABLE


def test_age_buckets():
    assert [age_bucket(timedelta(seconds=s)) for s in (0, 3599, 3600, 86399, 86400, 7 * 86400 - 1, 7 * 86400)] == [
        "<1h", "<1h", "1h-1d", "1h-1d", "1d-7d", "1d-7d", ">=7d"]


def test_decide():
    old, young = timedelta(hours=3), timedelta(minutes=5)
    assert decide(DECODABLE, old, None, False, None, False) == "move"
    assert decide(DECODABLE, old, timedelta(hours=2), False, 1, False) == "move"
    assert decide(DECODABLE, young, timedelta(hours=2), False, None, False) == "too_young"
    assert decide(DECODABLE, old, None, False, 0, False) == "over_max"
    assert decide(DECODABLE, old, None, True, None, False) == "dry_run"
    assert decide(DECODABLE, old, None, False, None, True) == "dead_lettered_again"
    assert decide("undecodable_payload", old, None, False, None, False) == "undecodable_payload"
    assert decide("undecodable_payload", old, None, True, None, False) == "undecodable_payload"
