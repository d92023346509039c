"""`python -m tools.redrive` on the emulators, run as an operator runs it: dead-lettered for real, then brought back.

Each test has its own topics: a main topic T whose push subscription feeds the sink with T-dead-letter as
its dead-letter topic (as deploy.sh sets it up), the pull subscription `T-dead-letter-pull` the command
reads by default, and a topic F whose subscription a stand-in for a failing sink nacks until Pub/Sub
dead-letters every message to T-dead-letter (with its real `CloudPubSubDeadLetter*` attributes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from devtools.procs import ROOT
from devtools.topology import ensure_subscription, ensure_topic
from shared.envelope import Batch, Identity, encode
from tests.helpers import make_event

pytestmark = pytest.mark.integration

MESSAGES, EVENTS_EACH, LEASE = 50, 2, 10


class Topology:
    """A test's own topics and subscriptions."""

    def __init__(self, pipeline, marker: str) -> None:
        p, s, project = pipeline.publisher, pipeline.subscriber, pipeline.project
        self.pipeline, self.marker = pipeline, marker
        self.topic_name = f"redrive-{marker}"
        self.topic = ensure_topic(p, project, self.topic_name)
        self.dead = ensure_topic(p, project, f"{self.topic_name}-dead-letter")
        # As deploy.sh creates it: no retry policy (redelivery at once), the default 10 s ack deadline.
        self.dead_pull = s.subscription_path(project, f"{self.topic_name}-dead-letter-pull")
        s.create_subscription(request={"name": self.dead_pull, "topic": self.dead})
        self.dead_watch = ensure_subscription(s, project, f"{self.topic_name}-dead-letter-watch", self.dead)
        ensure_subscription(s, project, f"{self.topic_name}-sink", self.topic, push_endpoint=pipeline.sink.url,
                            dead_letter_topic=ensure_topic(p, project, f"{self.topic_name}-sink-dead"),
                            max_delivery_attempts=5)
        self.republished = ensure_subscription(s, project, f"{self.topic_name}-watch", self.topic)
        self.failing_topic = ensure_topic(p, project, f"{self.topic_name}-failing")
        self.failing = ensure_subscription(s, project, f"{self.topic_name}-failing-sink", self.failing_topic,
                                           dead_letter_topic=self.dead, max_delivery_attempts=5)

    def pull_all(self, subscription: str, expect: int | None = None, quiet_s: float = 3.0,
                 timeout: float = 120.0) -> list:
        """Pull and ack until `expect` messages came (or nothing came for quiet_s)."""
        sub, got = self.pipeline.subscriber, []
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline and (expect is None or len(got) < expect):
            try:
                resp = sub.pull(subscription=subscription, max_messages=100, timeout=2, retry=None)
            except gexc.DeadlineExceeded:
                resp = None
            if resp and resp.received_messages:
                sub.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in resp.received_messages])
                got += [m.message for m in resp.received_messages]
                last = time.monotonic()
            elif expect is None and time.monotonic() - last > quiet_s:
                break
        return got

    def dead_letter(self, messages: list[tuple[bytes, dict]]) -> None:
        """Publish to F and nack every delivery until Pub/Sub has dead-lettered each message."""
        for data, attributes in messages:
            self.pipeline.publisher.publish(self.failing_topic, data, **attributes).result(timeout=10)
        sub, deadline = self.pipeline.subscriber, time.monotonic() + 120
        forwarded: list = []
        while len(forwarded) < len(messages) and time.monotonic() < deadline:
            try:
                resp = sub.pull(subscription=self.failing, max_messages=100, timeout=2, retry=None)
                if resp.received_messages:
                    sub.modify_ack_deadline(subscription=self.failing, ack_ids=[m.ack_id for m in
                                                                                 resp.received_messages],
                                            ack_deadline_seconds=0)
            except gexc.DeadlineExceeded:
                pass
            forwarded += self.pull_all(self.dead_watch, quiet_s=0.1, timeout=2)
        assert len(forwarded) == len(messages), "Pub/Sub did not dead-letter every message"
        assert all(int(m.attributes["CloudPubSubDeadLetterSourceDeliveryCount"]) >= 5 for m in forwarded)


def batches(marker: str) -> tuple[list[tuple[bytes, dict]], list[str]]:
    """MESSAGES real batches (as ingest encodes them) and their event ids."""
    identity = Identity(f"inst-redrive-{marker}", "https://x.example.com", f"fp-{marker}", ("dev",), "dev",
                        "licensed_instance")
    messages, ids = [], []
    for n in range(MESSAGES):
        events = [make_event() for _ in range(EVENTS_EACH)]
        ids += [e["id"] for e in events]
        messages.append(encode(Batch(identity, f"req-{marker}-{n}", datetime.now(UTC).isoformat(), events)))
    return messages, ids


POISON = (b"\x1f\x8bnot-gzip-at-all", {"encoding": "gzip", "requestId": "poison"})


def redrive_cmd(topology: Topology, *args: str) -> tuple[list[str], dict]:
    env = {**topology.pipeline.env, "PUBSUB_TOPIC": topology.topic_name, "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "tools.redrive", "--json", "--lease", str(LEASE), *args], env


def redrive(topology: Topology, *args: str, expect_rc: int = 0) -> dict:
    cmd, env = redrive_cmd(topology, *args)
    started = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == expect_rc, out.stdout + out.stderr
    report = orjson.loads(out.stdout.strip().splitlines()[-1])
    print(f"redrive {' '.join(args) or '(all)'}: {time.monotonic() - started:.1f} s, moved {report['moved']}, "
          f"left {report['left']}")
    warnings = [line for line in out.stderr.splitlines() if not line.startswith("moved")]
    assert not warnings, warnings
    return report


def counted(pipeline, view: str, ids: list[str]) -> dict[str, int]:
    query = (f"SELECT event_id, COUNT(*) AS n FROM `{pipeline.dataset_ref}.{view}` "
             "WHERE event_id IN UNNEST(@ids) GROUP BY event_id")
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", ids)])
    return {r.event_id: r.n for r in pipeline.bq().query(query, job_config=config, timeout=30).result(timeout=60)}


def wait_landed(pipeline, ids: list[str], timeout: float = 90.0) -> tuple[dict, dict]:
    deadline = time.monotonic() + timeout
    while True:
        deduped = counted(pipeline, "events_deduped", ids)
        if len(deduped) == len(ids) or time.monotonic() > deadline:
            return deduped, counted(pipeline, "events", ids)
        time.sleep(0.5)


def only_the_poison_is_left(topology: Topology) -> None:
    report = redrive(topology, "--dry-run")
    assert report["pulled"] == 1 and report["wouldMove"] == 0
    assert report["counts"] == {"undecodable_payload": {"<1h": 1}} and report["left"] == {"undecodable_payload": 1}


def test_dry_run_then_redrive_moves_the_50_once_and_leaves_the_undecodable(pipeline):
    marker = uuid.uuid4().hex[:8]
    topology = Topology(pipeline, marker)
    messages, ids = batches(marker)
    started = time.monotonic()
    topology.dead_letter([*messages, POISON])
    print(f"dead-lettered {len(messages) + 1} messages in {time.monotonic() - started:.1f} s")

    dry = redrive(topology, "--dry-run")
    assert dry["dryRun"] and dry["pulled"] == MESSAGES + 1 and dry["moved"] == 0 and dry["wouldMove"] == MESSAGES
    assert dry["counts"] == {"decodable": {"<1h": MESSAGES}, "undecodable_payload": {"<1h": 1}}
    assert dry["subscription"].endswith(f"/{topology.topic_name}-dead-letter-pull")  # the default
    assert topology.pull_all(topology.republished) == [], "a dry run published something"

    young = redrive(topology, "--older-than", "1d")
    assert young["moved"] == 0 and young["left"] == {"too_young": MESSAGES, "undecodable_payload": 1}
    first = redrive(topology, "--max", "10")
    assert first["moved"] == 10
    rest = redrive(topology)
    assert rest["moved"] == MESSAGES - 10 and rest["left"] == {"undecodable_payload": 1}
    assert rest["counts"]["undecodable_payload"] == {"<1h": 1} and not rest["errors"]

    republished = topology.pull_all(topology.republished, expect=MESSAGES, timeout=30)
    sent = {attributes["requestId"]: (data, attributes) for data, attributes in messages}
    assert len(republished) == MESSAGES
    assert {m.attributes["requestId"]: (m.data, dict(m.attributes)) for m in republished} == sent  # byte for byte

    deduped, events = wait_landed(pipeline, ids)
    assert deduped == dict.fromkeys(ids, 1)
    assert events == dict.fromkeys(ids, 1)  # no kill: each message published once
    only_the_poison_is_left(topology)


def test_a_kill_midway_loses_nothing_and_duplicates_only_events(pipeline):
    marker = uuid.uuid4().hex[:8]
    topology = Topology(pipeline, marker)
    messages, ids = batches(marker)
    topology.dead_letter([*messages, POISON])

    cmd, env = redrive_cmd(topology, "--batch", "1")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    moved_before = 0
    try:
        for line in proc.stderr:  # "moved 1 (total N)" after each acked message
            if line.startswith("moved"):
                moved_before = int(line.rsplit("total ", 1)[1].rstrip(")\n"))
                if moved_before >= 5:
                    os.kill(proc.pid, signal.SIGKILL)  # the operator's command, stopped by its pid
                    break
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the command finished before it was killed"
    assert 5 <= moved_before < MESSAGES
    print(f"killed after {moved_before} moved")

    time.sleep(LEASE + 2)  # what the killed run held comes back when its lease ends
    # The emulator returns expired leases on its own schedule: the operator's next runs move what comes back, and
    # within three leases everything has (docs/operations.md: wait the lease, then run it again until it moves nothing).
    moved_after, deadline = 0, time.monotonic() + 3 * LEASE
    while True:
        second = redrive(topology)
        assert not second["errors"] and second["left"] == {"undecodable_payload": 1}
        moved_after += second["moved"]
        if moved_before + moved_after >= MESSAGES or time.monotonic() > deadline:
            break
        time.sleep(1)
    second = {**second, "moved": moved_after}
    # at most the message in flight at the kill (published, not yet acked) is published twice
    assert MESSAGES <= moved_before + second["moved"] <= MESSAGES + 1

    deduped, events = wait_landed(pipeline, ids)
    assert deduped == dict.fromkeys(ids, 1), "lost or duplicated in events_deduped"
    assert set(events) == set(ids) and set(events.values()) <= {1, 2}
    duplicated = sorted(i for i, n in events.items() if n == 2)
    assert len(duplicated) <= EVENTS_EACH * (moved_before + second["moved"] - MESSAGES)
    print(f"second run moved {second['moved']}; events duplicated in `events`: {len(duplicated)}")
    only_the_poison_is_left(topology)
