"""Privacy and lifecycle on the local pipeline: policy at ingest, partition expiration, erasure."""

from __future__ import annotations

import gzip
import subprocess
import sys
import uuid

import pytest

from devtools.pipeline import create_warehouse
from devtools.procs import ROOT
from shared.sink.config import SinkConfig
from shared.sink.warehouse import refresh
from tests.helpers import make_event
from tests.integration.rows import rows_for, send, table, wait_rows

pytestmark = pytest.mark.integration
SECRET = "do-not-store-" + uuid.uuid4().hex


def test_policy_applies_before_anything_is_published(pipeline):
    """The pipeline's allowlist keeps cody.completion:*; only inst-columns keeps marketing tracking."""
    topic = f"projects/{pipeline.project}/topics/{pipeline.topic}"
    tap = pipeline.subscriber.create_subscription(name=f"projects/{pipeline.project}/subscriptions/tap-"
                                                  f"{uuid.uuid4().hex[:8]}", topic=topic).name
    allowed = make_event(feature="cody.completion", action="accepted",
                         parameters={"privateMetadata": {"languageId": "go"}})
    refused = make_event(feature="search.results", action="viewed", parameters={"privateMetadata": {"q": SECRET}},
                         marketingTracking={"url": f"https://x/{SECRET}"})
    tracked = make_event(marketingTracking={"url": "https://about.example.com"})
    assert len(send(pipeline, [allowed, refused], "inst-privacy")["succeededEvents"]) == 2
    assert send(pipeline, [tracked], "inst-columns")["succeededEvents"] == [tracked["id"]]
    rows = {r.event_id: r for r in wait_rows(pipeline, "events", [allowed["id"], refused["id"], tracked["id"]], 3)}
    assert rows[allowed["id"]].private_metadata == {"languageId": "go"} and rows[allowed["id"]].redacted_fields == []
    assert rows[refused["id"]].private_metadata is None and rows[refused["id"]].marketing_tracking is None
    assert rows[refused["id"]].redacted_fields == ["parameters.privateMetadata", "marketingTracking"]
    assert rows[tracked["id"]].marketing_tracking == {"url": "https://about.example.com"}
    published = pipeline.subscriber.pull(subscription=tap, max_messages=50, timeout=10).received_messages
    payloads = b"".join(gzip.decompress(m.message.data) for m in published)
    assert refused["id"].encode() in payloads and SECRET.encode() not in payloads  # never in Pub/Sub
    for service in (pipeline.ingest, pipeline.sink):
        assert SECRET not in service.log_path.read_text()  # nor in logs
    assert '"fields_redacted"' in pipeline.ingest.log_path.read_text()
    pipeline.subscriber.delete_subscription(subscription=tap)


def test_tables_expire_their_partitions(pipeline):
    events = pipeline.bq().get_table(f"{pipeline.project}.{pipeline.dataset}.events")
    rejected = pipeline.bq().get_table(f"{pipeline.project}.{pipeline.dataset}.rejected_events")
    assert events.time_partitioning.expiration_ms == 730 * 86_400_000
    assert rejected.time_partitioning.expiration_ms == 30 * 86_400_000


def erase(pipeline, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.erase", *args], env={**pipeline.env,
                          "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_erase_removes_exactly_one_instance(pipeline):
    gone, kept = f"erase-me-{uuid.uuid4().hex[:6]}", f"keep-me-{uuid.uuid4().hex[:6]}"
    events = {gone: [make_event(), make_event(timestamp="1999-01-01T00:00:00Z")], kept: [make_event()]}
    for instance, batch in events.items():
        send(pipeline, batch[:1], instance)
    from tests.integration.rows import publish_batch

    publish_batch(pipeline, events[gone][1:], gone)  # lands in rejected_events
    wait_rows(pipeline, "events", [events[gone][0]["id"], events[kept][0]["id"]], 2)
    wait_rows(pipeline, "rejected_events", [events[gone][1]["id"]], 1)
    refresh.refresh(pipeline.bq(), pipeline.dataset_ref)

    def in_aggregates(instance: str) -> list[int]:
        return [next(iter(pipeline.bq().query(f"SELECT COUNT(*) AS n FROM {table(pipeline, name)} "
                                              f"WHERE instance_id = '{instance}'").result())).n
                for name in ("daily_active_users", "instances", "daily_active_instances")]

    assert in_aggregates(gone) == [1, 1, 1]
    dry = erase(pipeline, "--instance-id", gone, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "events: would delete 1 rows" in dry.stdout and "rejected_events: would delete 1 rows" in dry.stdout
    assert len(rows_for(pipeline, "events", [events[gone][0]["id"]])) == 1  # dry run: nothing removed
    done = erase(pipeline, "--instance-id", gone)
    assert done.returncode == 0 and "events: deleted 1 rows" in done.stdout
    assert '"rows_erased"' in done.stdout and '"who"' in done.stdout
    assert rows_for(pipeline, "events", [events[gone][0]["id"]]) == []
    assert rows_for(pipeline, "rejected_events", [events[gone][1]["id"]]) == []
    assert len(rows_for(pipeline, "events", [events[kept][0]["id"]])) == 1  # another instance is intact
    count = next(iter(pipeline.bq().query(f"SELECT COUNT(*) AS n FROM {table(pipeline, 'events')} "
                                          f"WHERE instance_id = '{gone}'").result())).n
    assert count == 0
    assert "aggregates: rebuilt 1 days" in done.stdout
    assert in_aggregates(gone) == [0, 0, 0]  # the derived tables forget the instance too
    assert in_aggregates(kept) == [1, 1, 1]


def test_erase_that_cannot_rebuild_the_aggregates_says_so_and_fails(pipeline):
    """The rows are deleted and the erasure logged; the aggregates' failure is reported with its remedy."""
    dataset = f"erase_broken_{uuid.uuid4().hex[:6]}"
    env = {**pipeline.env, "BQ_DATASET": dataset}
    create_warehouse(SinkConfig.from_env(env))
    client = pipeline.bq()
    client.query(f"DROP TABLE `{pipeline.project}.{dataset}.daily_metadata_keys`").result()  # broken
    row = {"event_id": "e-1", "timestamp": "2026-11-01T00:00:00Z", "feature": "a.b", "action": "c",
           "instance_id": "gone", "received_at": "2026-11-01T00:00:00Z", "inserted_at": "2026-11-01T00:00:00Z"}
    assert client.insert_rows_json(f"{pipeline.project}.{dataset}.events", [row], timeout=10) == []
    out = subprocess.run([sys.executable, "-m", "tools.erase", "--instance-id", "gone"],
                         env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 1 and "events: deleted 1 rows" in out.stdout and '"rows_erased"' in out.stdout
    assert "aggregates NOT rebuilt" in out.stderr
    assert "python -m tools.aggregates rebuild --from 2026-11-01 --to 2026-11-01" in out.stderr


def test_erase_refuses_without_a_selector(pipeline):
    out = erase(pipeline)
    assert out.returncode == 2 and "one of the arguments --instance-id --license-fingerprint is required" in out.stderr
    assert erase(pipeline, "--instance-id", " ").returncode == 2
