"""The redrive's command line, and its loop against an in-memory subscription (no process, no server)."""

from __future__ import annotations

import itertools
import re
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from google.cloud.pubsub_v1 import types

from devtools.procs import ROOT
from tests.helpers import DEAD_LETTER_ATTRIBUTES, batch_message
from tools.redrive import Redrive, default_subscription, parser, subscription_path
from tools.settings import settings_file

# -- the command line ------------------------------------------------------------------------------------

def test_the_command_line_refuses_a_bad_duration_or_count(capsys):
    for argv in (["--older-than", "soon"], ["--max", "0"], ["--batch", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "not a duration" in capsys.readouterr().err
    args = parser().parse_args(["--dry-run", "--max", "5", "--older-than", "2h"])
    assert (args.dry_run, args.max, args.older_than, args.subscription) == (True, 5, timedelta(hours=2), None)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_default_subscription_is_the_one_deploy_sh_creates(environment):
    """deploy.sh names the dead-letter pull subscription from its settings file: the same name as the default."""
    (rule,) = re.findall(r'^  DLQ_PULL="(.*)"$', (ROOT / "deploy.sh").read_text(), re.M)
    settings = settings_file(environment)
    created = re.sub(r"\$(\w+)", lambda m: settings[m.group(1)], rule)
    assert default_subscription(settings["TOPIC"]) == created


def test_a_subscription_is_named_by_its_id_or_its_path():
    assert subscription_path("p", "s") == "projects/p/subscriptions/s"
    assert subscription_path("p", "projects/q/subscriptions/s") == "projects/q/subscriptions/s"


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
    report, _ = redrive(sub, older_than=timedelta(hours=2))
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
