"""End to end: ingest -> Pub/Sub emulator push -> sink -> BigQuery emulator, and the sink's failure paths."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from google.cloud import bigquery

from devtools.procs import ROOT
from shared.envelope import Batch, Identity, encode
from shared.ingest.licenses.keys import decode_license
from tests.helpers import make_event
from tests.integration.rows import flush_request_log, publish_batch, rows_for, send, table, wait_rows

pytestmark = pytest.mark.integration


def test_events_land_with_their_columns_and_partition(pipeline):
    license_key = pipeline.issue_license(("dev", "plan:e2e"))
    full = make_event(
        timestamp="2026-11-20T10:11:12.345678Z",
        parameters={"version": 3, "metadata": {"latencyMs": 12.5}, "legacyMetadata": {"legacyCount": "4"},
                    "privateMetadata": {"query": "secret"}, "billingMetadata": {"product": "CODY", "category": "CORE"}},
        user={"userId": "77", "anonymousUserId": "anon-7", "samsExternalId": "sams-7"},
        marketingTracking={"url": "https://about.sourcegraph.com", "cohortId": "2026-10"},
        interaction={"traceId": "t-1", "interactionId": "i-1", "geolocation": {"countryCode": "DE"}},
        newTopLevelField={"nested": [1, 2]},
        source={"server": {"version": "5.5.0", "build": "abc"}, "client": {"name": "WEB"}},
    )
    events = [full, make_event()]
    assert send(pipeline, events, "inst-columns", license_key)["succeededEvents"] == [e["id"] for e in events]
    rows = wait_rows(pipeline, "events", [full["id"]], 1)
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["timestamp"] == datetime(2026, 11, 20, 10, 11, 12, 345678, tzinfo=UTC)
    assert (row["feature"], row["action"], row["instance_id"]) == ("cody.completion", "executed", "inst-columns")
    assert row["external_url"] == "https://sg.example.com"
    assert row["license_fingerprint"] == decode_license(license_key).fingerprint
    assert row["license_tags"] == ["dev", "plan:e2e"] and row["environment"] == "dev"
    assert (row["server_version"], row["client_name"], row["client_version"]) == ("5.5.0", "WEB", None)
    assert row["parameters_version"] == 3
    assert row["metadata"] == {"latencyMs": 12.5, "legacyCount": 4.0}
    assert row["private_metadata"] == {"query": "secret"}
    assert (row["billing_product"], row["billing_category"]) == ("CODY", "CORE")
    assert (row["user_id"], row["anonymous_user_id"], row["sams_external_id"]) == (77, "anon-7", "sams-7")
    assert row["marketing_tracking"] == {"url": "https://about.sourcegraph.com", "cohortId": "2026-10"}
    assert (row["interaction_trace_id"], row["interaction_id"], row["country_code"]) == ("t-1", "i-1", "DE")
    assert row["extra"] == {"newTopLevelField": {"nested": [1, 2]}, "source": {"server": {"build": "abc"}}}
    assert row["message_id"] and row["request_id"]
    assert row["received_at"] <= row["inserted_at"]
    assert row["published_at"] is not None
    # The row is in its event day's partition: a filter on that day finds it, the day after does not, and the
    # partitions list that day (real BigQuery may list streamed rows under __UNPARTITIONED__ for a while).
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", full["id"])])
    by_day = {day: next(iter(pipeline.bq().query(
        f"SELECT COUNT(*) AS n FROM `{pipeline.project}.{pipeline.dataset}.events` "
        f"WHERE TIMESTAMP_TRUNC(timestamp, DAY) = TIMESTAMP '{day}' AND event_id = @id", job_config=config).result())).n
        for day in ("2026-11-20", "2026-11-21")}
    assert by_day == {"2026-11-20": 1, "2026-11-21": 0}
    partitions = {p.partition_id: p.total_rows for p in pipeline.bq().query(
        f"SELECT partition_id, total_rows FROM `{pipeline.project}.{pipeline.dataset}.INFORMATION_SCHEMA.PARTITIONS` "
        "WHERE table_name = 'events'").result()}
    assert partitions.get("20261120", 0) >= 1  # the emulator lists rows by their partition at once
    t = pipeline.bq().get_table(f"{pipeline.project}.{pipeline.dataset}.events")
    assert t.time_partitioning.field == "timestamp" and t.time_partitioning.type_ == "DAY"
    assert t.clustering_fields == ["feature", "action", "instance_id"]


def test_redelivered_message_is_deduplicated_by_the_view(pipeline):
    events = [make_event(), make_event()]
    publish_batch(pipeline, events, "inst-dup", times=2)
    ids = [e["id"] for e in events]
    assert len(wait_rows(pipeline, "events", ids, 4)) == 4
    assert len(rows_for(pipeline, "events_deduped", ids)) == 2


def test_another_license_cannot_shadow_an_instance_s_events(pipeline):
    event = make_event()
    publish_batch(pipeline, [event], "inst-shadow", fingerprint="fp-attacker")  # arrives first
    publish_batch(pipeline, [event], "inst-shadow", fingerprint="fp-owner")
    assert len(wait_rows(pipeline, "events", [event["id"]], 2)) == 2
    kept = {r.license_fingerprint for r in rows_for(pipeline, "events_deduped", [event["id"]])}
    assert kept == {"fp-attacker", "fp-owner"}  # the owner's event is never replaced by the earlier copy


def test_a_redeploy_drops_the_retired_views(pipeline):
    """Views of an earlier release are dropped; the analysts' replacements exist (docs/analysts.md)."""
    from google.api_core.exceptions import NotFound

    from devtools.pipeline import create_warehouse
    from shared.sink.warehouse.views import RETIRED_VIEWS

    client = pipeline.bq()
    for name in RETIRED_VIEWS:  # as the release before this one left them
        client.query(f"CREATE OR REPLACE VIEW {table(pipeline, name)} AS SELECT 1 AS x").result()
    create_warehouse(pipeline.config)
    for name in RETIRED_VIEWS:
        with pytest.raises(NotFound):
            client.get_table(f"{pipeline.dataset_ref}.{name}")
    for name in ("daily_feature_usage", "instances", "daily_active_instances", "metadata_keys"):
        client.get_table(f"{pipeline.dataset_ref}.{name}")


def test_bad_rows_go_to_rejected_events(pipeline):
    good = make_event()
    ancient = make_event(timestamp="2015-01-01T00:00:00Z")
    no_feature = make_event()
    del no_feature["feature"]
    bad_metadata = make_event(parameters={"metadata": {"x": "high"}})
    publish_batch(pipeline, [good, ancient, no_feature, bad_metadata, "junk"], "inst-bad")
    assert len(wait_rows(pipeline, "events", [good["id"]], 1)) == 1
    ids = [ancient["id"], no_feature["id"], bad_metadata["id"]]
    rejected = wait_rows(pipeline, "rejected_events", ids, 3)
    reasons = {r.event_id: r.reason for r in rejected}
    assert reasons == {ancient["id"]: "timestamp_out_of_range", no_feature["id"]: "invalid_event",
                       bad_metadata["id"]: "invalid_value"}
    raw = {r.event_id: r.raw_event for r in rejected}
    assert orjson.loads(raw[bad_metadata["id"]]) == bad_metadata  # JSON text: a STRING column refuses nothing
    assert all(r.instance_id == "inst-bad" and r.message_id and r.detail for r in rejected)
    junk = [r for r in pipeline.bq().query(f"SELECT * FROM {table(pipeline, 'rejected_events')} "
                                           "WHERE instance_id = 'inst-bad' AND event_index = 4").result()]
    assert len(junk) == 1 and junk[0].raw_event == '"junk"'


def test_bigquery_row_error_then_replay(pipeline, monkeypatch):
    """BigQuery refuses a row (faked: the emulator never does); replay brings it back once fixed."""
    from shared.sink.loader import Sink
    from shared.sink.storage_write import RowError, TableWriter

    events = [make_event(), make_event(), make_event()]
    original = TableWriter._send
    calls = []

    def refuse_second_row_once(self, rows):
        calls.append(len(rows))
        if self.stream.endswith("/events/streams/_default") and len(calls) == 1:
            return [RowError(index=1, code="FIELDS_ERROR", message="fake refusal")], None
        return original(self, rows)

    monkeypatch.setattr(TableWriter, "_send", refuse_second_row_once)
    identity = Identity("inst-replay", "https://r.example.com", "fp-r", ("dev",), "dev", "licensed_instance")
    data, attributes = encode(Batch(identity, "req-r", datetime.now(UTC).isoformat(), events))
    message_id = f"fake-{uuid.uuid4().hex[:8]}"
    sink = Sink(pipeline.config)
    counts = sink.handle({"message": {"data": base64.b64encode(data).decode(), "attributes": attributes,
                                      "messageId": message_id, "publishTime": datetime.now(UTC).isoformat()}})
    assert counts == {"events": 3, "inserted": 2, "rejected": 1}
    assert calls[:2] == [3, 2]  # the refused request wrote nothing; its good rows were appended again
    assert {r.event_id for r in rows_for(pipeline, "events", [e["id"] for e in events])} == {
        events[0]["id"], events[2]["id"]}
    (rejected,) = rows_for(pipeline, "rejected_events", [events[1]["id"]])
    assert rejected.reason == "bigquery_row_error" and "fake refusal" in rejected.detail
    assert rejected.replayed_at is None
    monkeypatch.setattr(TableWriter, "_send", original)

    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    env = {**pipeline.env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tools.replay", "--since", since, "--reason", "bigquery_row_error"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "re-published 1 events in 1 messages" in out.stdout
    landed = wait_rows(pipeline, "events", [events[1]["id"]], 1)
    assert len(landed) == 1 and landed[0].instance_id == "inst-replay"
    (marked,) = rows_for(pipeline, "rejected_events", [events[1]["id"]])
    assert marked.replayed_at is not None
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "re-published 0 events" in again.stdout


def test_many_messages_share_a_few_append_connections(pipeline):
    """30 batches through ingest and Pub/Sub, counted on the BigQuery emulator's side: connections are reused."""
    from devtools.bqemulator_serialized import APPEND_CONNECTION_LINE

    log = pipeline.bigquery.service.log_path
    before = log.read_text().count(APPEND_CONNECTION_LINE)
    license_key = pipeline.issue_license()
    ids = []
    for n in range(30):
        event = make_event()
        ids.append(event["id"])
        assert send(pipeline, [event], f"inst-conn-{n % 3}", license_key)["succeededEvents"] == [event["id"]]
    assert len(wait_rows(pipeline, "events", ids, 30)) == 30
    opened = log.read_text().count(APPEND_CONNECTION_LINE) - before
    assert opened <= 2, f"{opened} AppendRows connections for 30 messages"


def test_poison_message_goes_to_dead_letter(pipeline):
    """A topic, push subscription and dead-letter topic of its own (the shared ones carry other tests' traffic)."""
    from devtools.topology import ensure_subscription, ensure_topic

    marker = uuid.uuid4().hex
    topic = ensure_topic(pipeline.publisher, pipeline.project, f"poison-{marker[:8]}")
    dead = ensure_topic(pipeline.publisher, pipeline.project, f"poison-dead-{marker[:8]}")
    dead_pull = ensure_subscription(pipeline.subscriber, pipeline.project, f"poison-dead-pull-{marker[:8]}", dead)
    ensure_subscription(pipeline.subscriber, pipeline.project, f"poison-push-{marker[:8]}", topic,
                        push_endpoint=pipeline.sink.url, dead_letter_topic=dead,
                        max_delivery_attempts=pipeline.max_delivery_attempts)
    pipeline.publisher.publish(topic, b"\x1f\x8bnot-gzip", encoding="gzip", marker=marker).result(10)
    deadline = time.monotonic() + 120
    found = None
    while found is None and time.monotonic() < deadline:
        resp = pipeline.subscriber.pull(subscription=dead_pull, max_messages=10, timeout=10)
        for m in resp.received_messages:
            pipeline.subscriber.acknowledge(subscription=dead_pull, ack_ids=[m.ack_id])
            if m.message.attributes.get("marker") == marker:
                found = m
    assert found is not None, "poison message never reached the dead-letter topic"
    attempts = int(found.message.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "0"))
    assert attempts >= pipeline.max_delivery_attempts
    logged = [orjson.loads(line) for line in pipeline.sink.log_path.read_text().splitlines()
              if '"poison_message"' in line]
    assert logged and {entry["reasonCode"] for entry in logged} >= {"undecodable_payload"}


def test_migration_adds_missing_column_without_losing_rows(pipeline):
    from shared.sink.clients import add_missing_columns
    from shared.sink.warehouse.tables import EVENTS

    client = pipeline.bq()
    dataset = f"mig_{uuid.uuid4().hex[:6]}"
    client.create_dataset(f"{pipeline.project}.{dataset}")
    config = pipeline.config.__class__(**{**pipeline.config.__dict__, "bq_dataset": dataset})
    old_schema = [bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in EVENTS.columns if c.name != "country_code"]
    client.create_table(bigquery.Table(f"{pipeline.project}.{dataset}.events", schema=old_schema))
    row = {"event_id": "old-1", "timestamp": "2026-11-01T00:00:00Z", "feature": "a.b", "action": "cd",
           "received_at": "2026-11-01T00:00:00Z", "inserted_at": "2026-11-01T00:00:00Z"}
    assert client.insert_rows_json(f"{pipeline.project}.{dataset}.events", [row], timeout=10) == []
    assert add_missing_columns(client, config, EVENTS) == ["country_code"]
    result = list(client.query(f"SELECT event_id, country_code FROM `{pipeline.project}.{dataset}.events`").result())
    assert [(r.event_id, r.country_code) for r in result] == [("old-1", None)]


def test_analyst_queries_run(pipeline):
    """Every SQL block in docs/analysts.md runs against the emulator and answers, after a refresh."""
    import re

    from shared.sink.warehouse import refresh

    text = (ROOT / "docs" / "analysts.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", text, re.S)
    assert len(queries) >= 10
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    send(pipeline, [make_event(feature="cody.chat-question", action="submitted", timestamp=yesterday)], "inst-docs")
    unloadable = make_event()
    del unloadable["feature"]
    publish_batch(pipeline, [unloadable], "inst-docs")
    send(pipeline, [make_event(), {"id": "refused"}], "inst-docs")  # a refused event for the health queries
    wait_rows(pipeline, "rejected_events", [unloadable["id"]], 1)
    flush_request_log(pipeline.ingest.url)
    wait_rows(pipeline, "requests", ["inst-docs"], 2, column="instance_id")
    refresh.refresh(pipeline.bq(), pipeline.dataset_ref)
    unanswered = []
    for sql in queries:
        sql = sql.replace("PROJECT.telemetry", pipeline.dataset_ref).replace("INSTANCE_ID", "inst-docs")
        if not list(pipeline.bq().query(sql).result()):
            unanswered.append(sql)
    assert unanswered == []


def test_make_run_s_curl_example_is_accepted(pipeline, tmp_path):
    """The body `make run` prints (devtools/demo.py) is stamped with the time it is printed, and curl's request
    with it, through the edge as printed, succeeds."""
    from devtools.demo import curl_body

    now = datetime.now(UTC).replace(microsecond=0)
    body = curl_body(now)
    assert orjson.loads(body)["events"][0]["timestamp"] == now.isoformat().replace("+00:00", "Z")
    before = pipeline.edge.verdicts.copy()
    done = subprocess.run(["curl", "-sS", "-X", "POST", f"{pipeline.edge.url}/v1/events", "-H",
                           f"Authorization: Bearer {pipeline.issue_license()}", "-H", "Content-Type: application/json",
                           "-d", body], capture_output=True, timeout=30, check=True)
    answer = orjson.loads(done.stdout)
    assert answer["succeededEvents"] == [orjson.loads(body)["events"][0]["id"]] and answer["failedEvents"] == []
    assert pipeline.edge.verdicts - before == {(2000, 200): 1}  # Cloud Armor's license rule let it through
