"""Faults while events flow: Pub/Sub or BigQuery frozen (SIGSTOP keeps their state), a sink crash mid-batch."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from google.cloud import bigquery

from devtools.functions import start_function
from devtools.topology import ensure_subscription, ensure_topic
from shared.envelope import Batch, Identity, encode
from tools.client import Sender
from tools.generate import generate

pytestmark = pytest.mark.integration


def ids_in(pipeline, view: str, instance_id: str) -> list[str]:
    query = (f"SELECT event_id FROM `{pipeline.project}.{pipeline.dataset}.{view}` "
             "WHERE instance_id = @instance")
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("instance", "STRING",
                                                                                     instance_id)])
    return [r.event_id for r in pipeline.bq().query(query, job_config=config, timeout=30).result(timeout=60)]


def wait_for_ids(pipeline, instance_id: str, expected: set[str], timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        got = ids_in(pipeline, "events_deduped", instance_id)
        if set(got) >= expected or time.monotonic() > deadline:
            return got
        time.sleep(1)


def test_pubsub_stall_under_client_load_loses_nothing(pipeline):
    """Freeze the Pub/Sub emulator during a 5,000-event load: 503 + Retry-After, client retries, 0 lost, 0 extra."""
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
    got = wait_for_ids(pipeline, instance, {e["id"] for e in events})
    assert sorted(got) == sorted(e["id"] for e in events)  # exactly the sent ids, each once
    raw = len(ids_in(pipeline, "events", instance))
    assert raw >= 5000
    print(f"\nPub/Sub frozen 8 s: {report.summary()}; rows {raw}, deduped {len(got)}, lost 0")


def test_bigquery_stall_is_redelivered_and_lands_once(pipeline):
    """Freeze BigQuery for ~30 s while batches flow: the sink retries inside each delivery (its budget is
    8 s here), then fails it and Pub/Sub redelivers; every row lands, once in the view."""
    stall_s = float(os.environ.get("BIGQUERY_STALL_SECONDS", "30"))
    instance = f"inst-bq-stall-{uuid.uuid4().hex[:6]}"
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
    assert sorted(got) == sorted(sent)
    log = pipeline.sink.log_path.read_text()[log_start:]
    failures, retries = log.count('"sink_failed"'), log.count('"append_retry"')
    print(f"\nBigQuery frozen {stall_s:g} s: {len(sent)} events sent, {retries} appends retried in-delivery, "
          f"{failures} failed sink deliveries, "
          f"rows {len(ids_in(pipeline, 'events', instance))}, deduped {len(got)}, lost 0")


def test_sink_crash_mid_batch_is_redelivered_and_deduplicated(pipeline, tmp_path):
    """A sink process dies after writing half a batch; the redelivery writes all; the view shows each once."""
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
        got = wait_for_ids(pipeline, instance, {e["id"] for e in events}, timeout=90)
        assert (tmp_path / "crashed").exists(), "the sink did not crash"
        assert sorted(got) == sorted(e["id"] for e in events)
        assert len(ids_in(pipeline, "events", instance)) == 60  # 20 written before the crash, 40 after
    finally:
        crashing.stop()
