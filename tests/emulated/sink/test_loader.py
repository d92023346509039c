"""The sink function through functions-framework's app, with real CloudEvents, into the BigQuery emulator."""

from __future__ import annotations

import base64
import uuid

import functions_framework
import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from devtools.pipeline import create_warehouse
from devtools.procs import ROOT
from shared.envelope import Batch, Identity, PoisonMessage, encode
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.loader import Sink
from tests.helpers import make_event

SINK_MAIN = str(ROOT / "functions" / "sink" / "main.py")
IDENTITY = Identity("inst-l", None, "fp", ("dev",), "dev", "licensed_instance")


def pushed(data: bytes, attributes: dict, message_id: str) -> CloudEvent:
    """A 'message published' CloudEvent as Eventarc delivers it."""
    return CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"},
                      {"message": {"data": base64.b64encode(data).decode(), "attributes": attributes,
                                   "messageId": message_id, "publishTime": "2026-11-28T00:00:00Z"},
                       "subscription": "projects/p/subscriptions/s"})


def post(client, event: CloudEvent):
    headers, body = to_structured(event)
    return client.post("/", headers=headers, data=body)


@pytest.fixture
def warehouse(bigquery_env) -> SinkConfig:
    """The test's dataset as deploy.sh makes it (the sink creates nothing)."""
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    return config


def test_message_lands_in_bigquery_and_bad_events_in_rejected(bigquery_env, warehouse):
    client = functions_framework.create_app("sink", SINK_MAIN, "cloudevent").test_client()
    good, bad = make_event(), make_event(timestamp="1999-01-01T00:00:00Z")
    data, attributes = encode(Batch(IDENTITY, "req-l", "2026-11-28T00:00:00+00:00", [good, bad]))
    message_id = f"m-{uuid.uuid4().hex[:8]}"
    assert post(client, pushed(data, attributes, message_id)).status_code == 200
    bq = bigquery_client(SinkConfig.from_env(bigquery_env))
    dataset = f"{bigquery_env['GOOGLE_CLOUD_PROJECT']}.{bigquery_env['BQ_DATASET']}"
    rows = list(bq.query(f"SELECT event_id, message_id, caller_kind FROM `{dataset}.events`").result())
    assert [(r.event_id, r.message_id, r.caller_kind) for r in rows] == [(good["id"], message_id, "licensed_instance")]
    (rejected,) = bq.query(f"SELECT event_id, reason FROM `{dataset}.rejected_events`").result()
    assert (rejected.event_id, rejected.reason) == (bad["id"], "timestamp_out_of_range")


def test_poison_fails_every_delivery_and_is_logged_as_poison(bigquery_env, warehouse, capsys):
    """Every delivery of an undecodable message fails (a non-2xx answer, which Pub/Sub counts toward the
    dead-letter threshold: tests/integration/test_pipeline.py follows it to the dead-letter topic), each is
    logged as poison for the alert, and nothing is written."""
    client = functions_framework.create_app("sink", SINK_MAIN, "cloudevent").test_client()
    capsys.readouterr()
    for _ in range(3):
        assert post(client, pushed(b"\x00 not gzip", {"encoding": "gzip"}, "m-poison")).status_code == 500
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count('"message":"poison_message"') == 3 and "m-poison" in logged.out
    assert logged.out.count('"reasonCode":"undecodable_payload"') == 3
    bq = bigquery_client(warehouse)
    for table in ("events", "rejected_events"):
        (row,) = bq.query(f"SELECT COUNT(*) AS n FROM `{warehouse.dataset_ref}.{table}`").result()
        assert row.n == 0


def test_null_message_is_poison():
    with pytest.raises(PoisonMessage):
        Sink(SinkConfig.from_env({"TELEMETRY_ENV": "dev"})).handle({"message": None})


def test_a_failed_rejected_write_never_rewrites_good_rows(bigquery_env, warehouse, monkeypatch):
    """rejected_events is written before events: when it fails, the redelivery writes each good row once."""
    from google.api_core import exceptions as gexc

    from shared.sink.storage_write import TableWriter

    monkeypatch.setenv("BQ_RETRY_BUDGET_SECONDS", "0.5")
    sink = Sink(SinkConfig.from_env())
    good, ancient = make_event(), make_event(timestamp="1999-01-01T00:00:00Z")
    data, attributes = encode(Batch(IDENTITY, "req-o", "2026-11-28T00:00:00+00:00", [good, ancient]))
    message = pushed(data, attributes, f"m-{uuid.uuid4().hex[:8]}").data
    original = TableWriter._send
    failing = {"on": True}

    def rejected_unavailable(self: TableWriter, rows: list[bytes]) -> tuple:
        if failing["on"] and "/tables/rejected_events/" in self.stream:
            raise gexc.ServiceUnavailable("rejected_events is down")
        return original(self, rows)

    monkeypatch.setattr(TableWriter, "_send", rejected_unavailable)
    with pytest.raises(gexc.ServiceUnavailable):
        sink.handle(message)
    failing["on"] = False
    assert sink.handle(message) == {"events": 2, "inserted": 1, "rejected": 1}  # Pub/Sub's redelivery
    bq = bigquery_client(SinkConfig.from_env(bigquery_env))
    dataset = f"{bigquery_env['GOOGLE_CLOUD_PROJECT']}.{bigquery_env['BQ_DATASET']}"
    (row,) = bq.query(f"SELECT COUNT(*) AS n FROM `{dataset}.events` WHERE event_id = '{good['id']}'").result()
    assert row.n == 1


def test_a_batch_of_an_older_release_with_nan_in_a_struct_lands_whole(bigquery_env, warehouse):
    """A protobuf message published before ingest nulled non-finite Struct numbers (redriven from the dead-letter
    topic, say): every event lands, the NaN as null, and the one event BigQuery's window refuses goes to
    rejected_events alone."""
    from datetime import UTC, datetime, timedelta

    from shared.envelope import encode_protobuf
    from shared.gateway_pb2 import RecordEventsBody
    from tests.integration.messages import base_event

    now = datetime.now(UTC) - timedelta(minutes=5)
    events = [base_event(now) for _ in range(5)]
    for n, event in enumerate(events):
        event.id = f"old-{n}-{uuid.uuid4().hex[:6]}"
    events[1].parameters.private_metadata.update({"nan": float("nan"), "ok": 1, "deep": [float("inf")]})
    events[3].timestamp.seconds = int(datetime(1999, 1, 1, tzinfo=UTC).timestamp())
    data, attributes = encode_protobuf(Batch(IDENTITY, "req-nan", now.isoformat(), events),
                                       RecordEventsBody(events=events).SerializeToString())
    client = functions_framework.create_app("sink", SINK_MAIN, "cloudevent").test_client()
    assert post(client, pushed(data, attributes, f"m-{uuid.uuid4().hex[:8]}")).status_code == 200
    bq = bigquery_client(warehouse)
    rows = {r.event_id: r for r in bq.query(f"SELECT event_id, private_metadata FROM `{warehouse.dataset_ref}.events`"
                                            ).result()}
    assert set(rows) == {e.id for n, e in enumerate(events) if n != 3}
    assert rows[events[1].id].private_metadata == {"nan": None, "ok": 1, "deep": [None]}
    (rejected,) = bq.query(f"SELECT event_id, reason FROM `{warehouse.dataset_ref}.rejected_events`").result()
    assert (rejected.event_id, rejected.reason) == (events[3].id, "timestamp_out_of_range")
