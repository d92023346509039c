"""Faults while events flow: Pub/Sub or BigQuery frozen (SIGSTOP keeps their state), a sink crash mid-batch.

Each test sets up its own preconditions, so any one runs alone or in any order. With FAULTS_RECORD set to
a file, each appends one JSON line of its figures (sent, rows, deduped, lost, seconds): `make faults`
reads them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from devtools.front import Front
from devtools.functions import start_function
from devtools.topology import ensure_subscription, ensure_topic
from shared.envelope import Batch, Identity, encode
from tests.integration import faults
from tests.integration.faults import ids_in, record, unloaded_messages, wait_for_ids
from tools.client import Sender
from tools.generate import generate

pytestmark = pytest.mark.integration


redelivering_emulator = faults.redelivering_emulator  # autouse: the patched emulator


def test_pubsub_stall_under_client_load_loses_nothing(pipeline):
    """Freeze the Pub/Sub emulator during a 5,000-event load: 503 + Retry-After, client retries, 0 lost, 0 extra."""
    started = time.monotonic()
    instance = f"inst-ps-stall-{uuid.uuid4().hex[:6]}"
    events = [event for _, event in generate(5000, instances=2, days=2, seed=11)]
    sender = Sender(pipeline.ingest.url, pipeline.issue_license(), instance, batch_size=250, max_time_s=240)
    progress = {"done": 0}
    thaw = threading.Timer(8.0, lambda: pipeline.pubsub.signal(signal.SIGCONT))

    def freeze_after_1000(count: int) -> None:
        """Called by the client after each answered batch: freeze Pub/Sub once 1,000 events are through."""
        before, progress["done"] = progress["done"], progress["done"] + count
        if before < 1000 <= progress["done"]:
            pipeline.pubsub.signal(signal.SIGSTOP)
            thaw.start()

    log_start = len(pipeline.ingest.log_path.read_text())
    try:
        report = sender.send(events, freeze_after_1000)
    finally:
        if thaw.ident:  # the freeze happened: wait for its thaw
            thaw.join()
        pipeline.pubsub.signal(signal.SIGCONT)
    assert report.ok and report.succeeded == 5000, report.summary()
    assert report.retries > 0, "the stall never reached the client"
    assert '"status":503' in pipeline.ingest.log_path.read_text()[log_start:]
    sent = [e["id"] for e in events]
    got = wait_for_ids(pipeline, instance, set(sent))
    raw = len(ids_in(pipeline, "events", instance))
    record("pubsub_stall", len(sent), raw, len(set(got) & set(sent)), started)
    assert sorted(got) == sorted(sent)  # exactly the sent ids, each once
    assert raw >= 5000
    print(f"\nPub/Sub frozen 8 s: {report.summary()}; rows {raw}, deduped {len(got)}, lost 0")


def test_bigquery_stall_is_redelivered_and_lands_once(pipeline):
    """Freeze BigQuery for ~30 s while batches flow: the sink retries inside each delivery (its budget is
    8 s here), then fails it and Pub/Sub redelivers; every row lands, once in the view.

    Precondition, set up here: a warm sink (prepared, its AppendRows connection open), as in the middle of
    a day's traffic. A cold one cannot retry appends while BigQuery is frozen: test_sink_cold_stall.py.
    """
    started = time.monotonic()
    stall_s = float(os.environ.get("BIGQUERY_STALL_SECONDS", "30"))
    suffix = uuid.uuid4().hex[:6]
    warm = Sender(pipeline.ingest.url, pipeline.issue_license(), f"inst-bq-warm-{suffix}", batch_size=100)
    warm_events = [event for _, event in generate(10, seed=99)]
    assert warm.send(warm_events).succeeded == 10
    warm_ids = {e["id"] for e in warm_events}
    assert set(wait_for_ids(pipeline, f"inst-bq-warm-{suffix}", warm_ids, timeout=60)) == warm_ids, \
        "the warm-up batch did not land: the sink is not ready"

    instance = f"inst-bq-stall-{suffix}"
    sender = Sender(pipeline.ingest.url, pipeline.issue_license(), instance, batch_size=100, max_time_s=60)
    log_start = len(pipeline.sink.log_path.read_text())
    sent: list[str] = []
    pipeline.bigquery.service.signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + stall_s
        while time.monotonic() < deadline:
            events = [event for _, event in generate(100, seed=len(sent))]
            assert sender.send(events).succeeded == 100
            sent += [e["id"] for e in events]
            time.sleep(stall_s / 6)
    finally:
        pipeline.bigquery.service.signal(signal.SIGCONT)
    log = pipeline.sink.log_path.read_text()[log_start:]
    assert '"append_retry"' in log, "the sink never retried inside a delivery"
    assert '"sink_failed"' in log, "the sink never gave a delivery back to Pub/Sub"
    got = wait_for_ids(pipeline, instance, set(sent))
    raw = len(ids_in(pipeline, "events", instance))
    record("bigquery_stall", len(sent), raw, len(set(got) & set(sent)), started)
    log = pipeline.sink.log_path.read_text()[log_start:]
    assert sorted(got) == sorted(sent), (f"{len(set(sent) - set(got))} of {len(sent)} events never landed; "
                                         f"messages failed and never loaded: {unloaded_messages(log)}")
    failures, retries = log.count('"sink_failed"'), log.count('"append_retry"')
    print(f"\nBigQuery frozen {stall_s:g} s: {len(sent)} events sent, {retries} appends retried in-delivery, "
          f"{failures} failed sink deliveries, rows {raw}, deduped {len(got)}, lost 0")


def test_sink_crash_mid_batch_is_redelivered_and_deduplicated(pipeline, tmp_path):
    """A sink process dies after writing half a batch; the redelivery writes all; the view shows each once."""
    started = time.monotonic()
    topic = ensure_topic(pipeline.publisher, pipeline.project, f"crash-{uuid.uuid4().hex[:6]}")
    crashing = start_function("sink", {**pipeline.env, "CRASH_FLAG_FILE": str(tmp_path / "crashed")},
                              source="tests/integration/crashing_sink/main.py")
    try:
        ensure_subscription(pipeline.subscriber, pipeline.project, f"crash-push-{uuid.uuid4().hex[:6]}", topic,
                            push_endpoint=crashing.url)
        instance = f"inst-crash-{uuid.uuid4().hex[:6]}"
        events = [event for _, event in generate(40, seed=5)]
        identity = Identity(instance, None, "fp", ("dev",), "dev", "licensed_instance")
        data, attributes = encode(Batch(identity, "req-crash", datetime.now(UTC).isoformat(), events))
        pipeline.publisher.publish(topic, data, **attributes).result(timeout=10)
        sent = [e["id"] for e in events]
        got = wait_for_ids(pipeline, instance, set(sent), timeout=90)
        raw = len(ids_in(pipeline, "events", instance))
        record("sink_crash", len(sent), raw, len(set(got) & set(sent)), started)
        assert (tmp_path / "crashed").exists(), "the sink did not crash"
        assert sorted(got) == sorted(sent)
        assert raw == 60  # 20 written before the crash, 40 after
    finally:
        crashing.stop()


def test_functions_frozen_between_requests_lose_nothing(pipeline):
    """Request-based billing: ingest and the sink get CPU only while a request is in flight (devtools.front's
    freeze stops each process group whenever none is). Batches come in rounds with idle gaps, so each function is
    frozen between them with its clients open (the publisher's channel, the sink's AppendRows connection and their
    threads); every accepted event lands, once in the view, and nothing is dead-lettered."""
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:6]
    topic = ensure_topic(pipeline.publisher, pipeline.project, f"frozen-{suffix}")
    sink = start_function("sink", pipeline.env)
    ingest = start_function("ingest", {**pipeline.env, "PUBSUB_TOPIC": f"frozen-{suffix}"})
    fronts = [Front(sink.url, slots=4, freeze=sink.signal).start(),
              Front(ingest.url, slots=8, freeze=ingest.signal).start()]
    try:
        ensure_subscription(pipeline.subscriber, pipeline.project, f"frozen-push-{suffix}", topic,
                            push_endpoint=fronts[0].url, dead_letter_topic=pipeline.dead_letter_topic,
                            max_delivery_attempts=5)
        instance = f"inst-frozen-{suffix}"
        sender = Sender(fronts[1].url, pipeline.issue_license(), instance, batch_size=50, max_time_s=60)
        sent: list[str] = []
        for round_ in range(5):
            events = [event for _, event in generate(100, seed=1000 + round_)]
            assert sender.send(events).succeeded == 100
            sent += [e["id"] for e in events]
            time.sleep(3)  # both functions frozen: nothing of theirs runs
        got = wait_for_ids(pipeline, instance, set(sent), timeout=120)
        record("functions_frozen", len(sent), len(ids_in(pipeline, "events", instance)), len(set(got) & set(sent)),
               started)
        assert sorted(got) == sorted(sent)
        assert fronts[0].stats().statuses.keys() <= {200, 204}  # no delivery failed because of a freeze
    finally:
        for front in fronts:
            front.thaw()
            front.stop()
        ingest.stop()
        sink.stop()
