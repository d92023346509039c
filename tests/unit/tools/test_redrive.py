"""The redrive's pure parts, and its loop against an in-memory subscription (no process, no server)."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
import pytest
from google.cloud.pubsub_v1 import types

from shared.envelope import Batch, Identity, encode
from tests.helpers import make_event
from tools.redrive import (
    DECODABLE,
    Redrive,
    age_bucket,
    classify,
    decide,
    default_subscription,
    parse_duration,
    parser,
    republish_attributes,
    subscription_path,
)

DEAD_LETTER_ATTRIBUTES = {"CloudPubSubDeadLetterSourceDeliveryCount": "5",
                          "CloudPubSubDeadLetterSourceSubscription": "telemetry-events-sink",
                          "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
                          "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-11-01T00:00:00.000Z"}


def batch_message(events: int = 1, received_at: str | None = None, **extra: str) -> tuple[bytes, dict]:
    identity = Identity("inst-1", None, "fp-1", ("dev",), "dev", "licensed_instance")
    batch = Batch(identity, "req-1", received_at or datetime.now(UTC).isoformat(),
                  [make_event() for _ in range(events)])
    return encode(batch, 1, extra or None)


# -- pure functions --------------------------------------------------------------------------------------

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


def test_the_command_line_refuses_a_bad_duration_or_count(capsys):
    for argv in (["--older-than", "soon"], ["--max", "0"], ["--batch", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "not a duration" in capsys.readouterr().err
    args = parser().parse_args(["--dry-run", "--max", "5", "--older-than", "2h"])
    assert (args.dry_run, args.max, args.older_than, args.subscription) == (True, 5, timedelta(hours=2), None)


def test_only_pub_sub_s_dead_letter_attributes_are_dropped():
    kept = {"encoding": "gzip", "eventCount": "3", "requestId": "", "deadLetter": "mine",
            "cloudPubSubDeadLetterSourceDeliveryCount": "not Pub/Sub's (case differs)", "CloudPubSubOther": "x"}
    assert republish_attributes({**kept, **DEAD_LETTER_ATTRIBUTES}) == kept
    assert republish_attributes({}) == {}


def test_the_default_subscription_is_the_one_deploy_sh_creates():
    # deploy.sh: DLQ_PULL="$DEAD_LETTER_TOPIC-pull", DEAD_LETTER_TOPIC=telemetry-events-dead-letter (deploy/*.env)
    assert default_subscription("telemetry-events") == "telemetry-events-dead-letter-pull"
    assert subscription_path("p", "s") == "projects/p/subscriptions/s"
    assert subscription_path("p", "projects/q/subscriptions/s") == "projects/q/subscriptions/s"


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
    ]


@pytest.mark.parametrize(("reason", "data", "attributes"), _poison_cases())
def test_messages_that_would_only_fail_again_are_named_by_reason(reason, data, attributes):
    assert classify(data, attributes) == reason


def test_a_real_batch_is_decodable_with_or_without_the_dead_letter_attributes():
    data, attributes = batch_message(3)
    assert classify(data, attributes) == DECODABLE
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


# -- the loop, on an in-memory subscription ----------------------------------------------------------------

class FakeSubscription:
    """Pub/Sub's lease semantics: a pulled message is invisible until acked or its deadline passes."""

    def __init__(self, ack_deadline_s: float = 10.0) -> None:
        self.ack_deadline_s = ack_deadline_s
        self.messages: dict[str, dict] = {}
        self.log: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.lapse_next_lease = False  # the next modify_ack_deadline is ignored (a lease that lapses)

    def add(self, data: bytes, attributes: dict, age: timedelta = timedelta(minutes=1)) -> str:
        mid = str(next(self._ids))
        message = types.PubsubMessage(data=data, attributes=attributes, message_id=mid,
                                      publish_time=datetime.now(UTC) - age)
        self.messages[mid] = {"message": message, "visible": 0.0, "acked": False, "ack_id": None, "pulls": 0}
        return mid

    def waiting(self) -> list[str]:
        return [mid for mid, m in self.messages.items() if not m["acked"]]

    def pull(self, subscription: str, max_messages: int, timeout: float, retry: object = None) -> SimpleNamespace:
        now = time.monotonic()
        out = []
        for mid, m in self.messages.items():
            if len(out) < max_messages and not m["acked"] and m["visible"] <= now:
                m["pulls"] += 1
                m["ack_id"] = f"ack-{mid}-{m['pulls']}"
                m["visible"] = now + self.ack_deadline_s
                out.append(types.ReceivedMessage(ack_id=m["ack_id"], message=m["message"]))
        return SimpleNamespace(received_messages=out)

    def _find(self, ack_id: str) -> dict | None:
        mid = ack_id.split("-")[1]
        m = self.messages.get(mid)
        return m if m and m["ack_id"] == ack_id else None

    def acknowledge(self, subscription: str, ack_ids: list[str], timeout: float, retry: object = None) -> None:
        for ack_id in ack_ids:
            if (m := self._find(ack_id)) is not None:
                m["acked"] = True
                self.log.append(("ack", m["message"].message_id))

    def modify_ack_deadline(self, subscription: str, ack_ids: list[str], ack_deadline_seconds: int,
                            timeout: float, retry: object = None) -> None:
        if self.lapse_next_lease and ack_deadline_seconds:
            self.lapse_next_lease = False
            for ack_id in ack_ids:
                if (m := self._find(ack_id)) is not None:
                    m["visible"] = 0.0
            return
        for ack_id in ack_ids:
            if (m := self._find(ack_id)) is not None:
                m["visible"] = time.monotonic() + ack_deadline_seconds
                if ack_deadline_seconds == 0:
                    self.log.append(("release", m["message"].message_id))


class FakePublisher:
    """A Publisher whose client answers each publish with a future (confirmed unless told to fail)."""

    topic_path = "projects/p/topics/telemetry-events"

    def __init__(self, subscription: FakeSubscription, fail: int = 0) -> None:
        self.subscription = subscription
        self.published: list[tuple[bytes, dict]] = []
        self.fail = fail
        self.client = self

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future:
        assert topic == self.topic_path
        future: Future = Future()
        if self.fail:
            self.fail -= 1
            future.set_exception(TimeoutError("publish not confirmed"))
        else:
            self.published.append((data, attributes))
            self.subscription.log.append(("confirmed", attributes.get("requestId", "")))
            future.set_result(str(len(self.published)))
        return future


def redrive(subscription: FakeSubscription, publisher: FakePublisher | None = None, **options: object) -> tuple:
    publisher = publisher or FakePublisher(subscription)
    run = Redrive(subscription, publisher, "projects/p/subscriptions/dlq", lease_s=30, publish_timeout_s=1,
                  **{"batch": 4, **options})
    return run.run(), publisher


def test_moves_the_decodable_byte_for_byte_and_leaves_the_poison_once():
    sub = FakeSubscription()
    originals = [batch_message(2, requestId=f"r{n}") for n in range(6)]
    for data, attributes in originals:
        sub.add(data, {**attributes, **DEAD_LETTER_ATTRIBUTES})
    poison = sub.add(b"\x1f\x8bnot-gzip", {"encoding": "gzip", **DEAD_LETTER_ATTRIBUTES})
    report, publisher = redrive(sub)
    assert report.ok and report.moved == 6 and report.pulled == 7
    assert sorted(publisher.published, key=lambda p: p[1]["requestId"]) == originals  # data and attributes
    assert sub.waiting() == [poison] and report.left == {"undecodable_payload": 1}
    assert sub.messages[poison]["pulls"] == 1, "the poison message is handled once, never looped"
    assert sub.messages[poison]["visible"] <= time.monotonic(), "released at the end (ack deadline 0)"
    assert ("release", poison) in sub.log
    # each ack follows its own publish's confirmation
    for n, (_data, attributes) in enumerate(originals):
        mid = str(n + 1)
        assert sub.log.index(("confirmed", attributes["requestId"])) < sub.log.index(("ack", mid))


def test_a_dry_run_moves_nothing_counts_per_reason_and_age_and_releases_everything():
    sub = FakeSubscription()
    for age in (timedelta(minutes=5), timedelta(hours=5), timedelta(days=2), timedelta(days=8)):
        sub.add(*batch_message(), age=age)
    sub.add(b"junk", {"encoding": "br"}, timedelta(hours=2))
    report, publisher = redrive(sub, dry_run=True, older_than=timedelta(hours=1))
    assert publisher.published == [] and report.moved == 0 and report.ok
    assert len(sub.waiting()) == 5 and all(m["pulls"] == 1 for m in sub.messages.values())
    assert all(m["visible"] <= time.monotonic() for m in sub.messages.values())
    assert report.as_json()["counts"] == {"decodable": {"<1h": 1, "1h-1d": 1, "1d-7d": 1, ">=7d": 1},
                                          "unknown_encoding": {"1h-1d": 1}}
    assert report.would_move == 3 and report.left == {"too_young": 1, "unknown_encoding": 1}
    text = report.text()
    assert "dry run: nothing moved" in text and "would move 3" in text


def test_max_stops_after_n_moved():
    sub = FakeSubscription()
    for _ in range(7):
        sub.add(*batch_message())
    report, publisher = redrive(sub, max_moved=3)
    assert report.moved == 3 and len(publisher.published) == 3 and len(sub.waiting()) == 4
    assert all(m["visible"] <= time.monotonic() for m in sub.messages.values() if not m["acked"])


def test_older_than_moves_only_the_older():
    sub = FakeSubscription()
    old = [sub.add(*batch_message(), age=timedelta(hours=3)) for _ in range(3)]
    young = [sub.add(*batch_message(), age=timedelta(minutes=10)) for _ in range(2)]
    report, _ = redrive(sub, older_than=parse_duration("2h"))
    assert report.moved == 3 and sorted(sub.waiting()) == sorted(young) and report.left == {"too_young": 2}
    assert all(sub.messages[mid]["acked"] for mid in old)


def test_an_unconfirmed_publish_leaves_its_message_and_fails_the_run():
    sub = FakeSubscription()
    ids = [sub.add(*batch_message()) for _ in range(6)]
    report, publisher = redrive(sub, FakePublisher(sub, fail=1), batch=2)
    assert not report.ok and report.failed_publishes == 1 and "not confirmed" in report.errors[0]
    assert report.moved == 1 and len(publisher.published) == 1  # the run stopped after that batch
    assert ids[0] in sub.waiting() and sub.messages[ids[0]]["visible"] <= time.monotonic()
    assert "FAILED: 1 publishes not confirmed" in report.text()


def test_a_lapsed_lease_brings_a_held_message_back_without_counting_it_twice():
    sub = FakeSubscription()
    poison = sub.add(b"junk", {"encoding": "gzip"})
    sub.lapse_next_lease = True  # the lease taken on the first pull's messages does not hold
    for _ in range(3):
        sub.add(*batch_message())
    report, _ = redrive(sub, batch=1)
    assert sub.messages[poison]["pulls"] >= 2  # it came back ...
    assert report.pulled == 4 and report.left == {"undecodable_payload": 1} and report.moved == 3  # ... once


def test_a_message_dead_lettered_again_during_the_run_is_not_moved_twice():
    sub = FakeSubscription()
    data, attributes = batch_message()
    sub.add(data, attributes)
    publisher = FakePublisher(sub)
    original_publish = publisher.publish

    def publish_and_fail_again(topic: str, data: bytes, **attrs: str) -> Future:
        future = original_publish(topic, data, **attrs)
        sub.add(data, {**attrs, **DEAD_LETTER_ATTRIBUTES}, age=timedelta(0))  # the sink failed it again at once
        return future

    publisher.client = SimpleNamespace(publish=publish_and_fail_again)
    report, _ = redrive(sub, publisher)
    assert report.moved == 1 and len(publisher.published) == 1
    assert report.left == {"dead_lettered_again": 1} and len(sub.waiting()) == 1
