"""A backlog drains through a Cloud Run-like front (devtools/front.py) without dead-lettering healthy messages.

Each test builds its own topic, dead-letter topic and pull subscription, push subscription and sink (its own
functions-framework process) behind its own front, on the session's emulators; rows are told apart by an
instance id of the test's own.

"Sink stopped" is modelled as operators stop push delivery: the push subscription has no push endpoint
(`modifyPushConfig` with an empty config pauses delivery; messages wait, and no delivery attempt is
counted). A stopped endpoint that refuses connections, or answers errors, would count an attempt per push
and dead-letter the backlog before the sink is back. Starting the sink = setting the endpoint to the front.

With PRINT (pytest -s) each test prints its figures; docs/operations.md "Draining a backlog" quotes them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from devtools.front import Front
from devtools.functions import start_function
from devtools.topology import ensure_subscription, ensure_topic
from shared.envelope import Batch, Identity, encode
from tools.generate import generate

pytestmark = pytest.mark.integration


class Backlog:
    """A topic with a paused push subscription (dead letter after `attempts`), its DLQ, a sink behind a front."""

    def __init__(self, pipeline, *, attempts: int, backoff_s: tuple[int, int], threads: int = 8) -> None:
        self.pipeline, self.suffix = pipeline, uuid.uuid4().hex[:8]
        self.instance = f"inst-backlog-{self.suffix}"
        pub, sub = pipeline.publisher, pipeline.subscriber
        self.topic = ensure_topic(pub, pipeline.project, f"backlog-{self.suffix}")
        dead = ensure_topic(pub, pipeline.project, f"backlog-{self.suffix}-dead-letter")
        self.dead_pull = ensure_subscription(sub, pipeline.project, f"backlog-{self.suffix}-dlq", dead)
        self.push = ensure_subscription(sub, pipeline.project, f"backlog-{self.suffix}-sink", self.topic,
                                        dead_letter_topic=dead, max_delivery_attempts=attempts,
                                        ack_deadline_s=120, retry_backoff_s=backoff_s)
        self.threads = threads
        self.sink = self.front = None

    def publish(self, events: int, per_message: int) -> list[str]:
        """Publish `events` events in messages of `per_message` (one per accepted batch, as ingest does)."""
        identity = Identity(self.instance, None, "fp-backlog", ("dev",), "dev", "licensed_instance")
        evs = [e for _, e in generate(events, instances=1, days=2, seed=hash(self.suffix) & 0xFFFF)]
        futures = []
        for start in range(0, events, per_message):
            chunk = evs[start:start + per_message]
            data, attributes = encode(Batch(identity, f"req-{start}", datetime.now(UTC).isoformat(), chunk))
            futures.append(self.pipeline.publisher.publish(self.topic, data, **attributes))
        for f in futures:
            f.result(timeout=60)
        return [e["id"] for e in evs]

    def start_sink(self, **front: float) -> float:
        """Start the sink and its front, then resume push delivery to the front; the monotonic start time."""
        self.sink = start_function("sink", self.pipeline.env, threads=self.threads)
        self.front = Front(self.sink.url, **front).start()
        self.pipeline.subscriber.modify_push_config(
            request={"subscription": self.push, "push_config": {"push_endpoint": self.front.url}})
        return time.monotonic()

    def deduped(self) -> int:
        query = (f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM "
                 f"`{self.pipeline.project}.{self.pipeline.dataset}.events_deduped` WHERE instance_id = @i")
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("i", "STRING",
                                                                                         self.instance)])
        row = next(iter(self.pipeline.bq().query(query, job_config=config, timeout=30).result(timeout=60)))
        assert row.n == row.d, "an event appears twice in events_deduped"
        return row.n

    def dead_lettered(self) -> int:
        """Drain the dead-letter subscription; how many messages it held."""
        got = 0
        while True:
            try:
                resp = self.pipeline.subscriber.pull(subscription=self.dead_pull, max_messages=1000, timeout=1,
                                                     retry=None)
            except gexc.DeadlineExceeded:
                return got
            if not resp.received_messages:
                return got
            got += len(resp.received_messages)
            self.pipeline.subscriber.acknowledge(subscription=self.dead_pull,
                                                 ack_ids=[m.ack_id for m in resp.received_messages])

    def wait_landed(self, expected: int, timeout: float) -> tuple[int, float]:
        """Poll events_deduped until `expected` rows (or timeout); (rows, monotonic time seen)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.deduped()
            if n >= expected or time.monotonic() > deadline:
                return n, time.monotonic()
            time.sleep(0.5)

    def stop(self) -> None:
        if self.front:
            self.front.stop()
        if self.sink:
            self.sink.stop()


@pytest.fixture
def backlog(pipeline, request):
    made: list[Backlog] = []

    def make(**kw) -> Backlog:
        made.append(Backlog(pipeline, **kw))
        return made[-1]

    yield make
    for b in made:
        b.stop()


def test_backlog_of_50000_events_drains_once_with_nothing_dead_lettered(backlog):
    """50,000 events (500 messages of 100) wait while push is paused; the sink starts behind a front of 2
    slots (the emulator's push window: it never has more than 2 pushes in flight) with a queue: every event
    lands once, nothing is dead-lettered, nothing is refused."""
    b = backlog(attempts=10, backoff_s=(10, 600))
    started = time.monotonic()
    sent = b.publish(50_000, per_message=100)
    published_s = time.monotonic() - started
    t0 = b.start_sink(slots=2, queue=2, queue_timeout_s=60)
    rows, t1 = b.wait_landed(len(sent), timeout=240)
    stats = b.front.stats()
    dead = b.dead_lettered()
    print(f"\nbacklog 50,000 events / 500 messages published in {published_s:.1f} s; drained in {t1 - t0:.1f} s "
          f"({rows / (t1 - t0):,.0f} events/s, {stats.forwarded / (t1 - t0):.1f} requests/s); front: "
          f"{stats.forwarded} forwarded, {stats.queued} queued, {stats.refused} refused (429), peak in flight "
          f"{stats.peak_in_flight}, sink answers {stats.statuses}; dead-lettered {dead}")
    assert rows == len(sent)
    assert dead == 0
    assert stats.refused == 0


def test_old_settings_dead_letter_healthy_messages_under_429(backlog):
    """The failure mode: 5 attempts with a 1-10 s backoff (the emulator's shortest) behind a front of 1 slot
    and no queue, so half the emulator's 2-wide push window is refused (429), as a prod backlog's pushes are
    once they would wait longer than Cloud Run's queue: healthy messages reach the dead-letter topic
    unprocessed and their events never land."""
    b = backlog(attempts=5, backoff_s=(1, 10))
    sent = len(b.publish(3_000, per_message=10))
    t0 = b.start_sink(slots=1, queue=0)
    rows, dead, deadline = 0, 0, time.monotonic() + 90
    while rows + 10 * dead < sent and time.monotonic() < deadline:  # every message landed or dead-lettered
        time.sleep(1)
        dead += b.dead_lettered()
        rows = b.deduped()
    stats = b.front.stats()
    print(f"\nold settings (5 attempts, backoff 1-10 s), 1 slot, no queue: after {time.monotonic() - t0:.1f} s "
          f"{rows}/{sent} events landed; {stats.refused} pushes refused (429), {stats.forwarded} forwarded; "
          f"{dead} of 300 healthy messages dead-lettered")
    assert stats.refused > 0
    assert dead > 0, "no healthy message was dead-lettered: the failure mode did not show"
    assert rows == sent - 10 * dead  # exactly the dead-lettered messages' events are missing
