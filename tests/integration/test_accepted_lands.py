"""Accepted means stored: every event ingest answers as succeeded lands, in `events` or alone in `rejected_events`.

Events are generated from the `.proto`'s own descriptors (tests/integration/descriptors.py) and, for what only JSON
can say, from the JSON shape. Each request goes through functions-framework's ingest app in this process and the
real Pub/Sub emulator; every message it published is pulled and handed to the sink (a real Sink on the BigQuery
emulator, through the Storage Write API), and what landed is read back from BigQuery. The same event sent as
protobuf and as proto3 JSON lands as the same row, column by column, apart from what docs/api.md says differs.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import hypothesis
import orjson
import pytest
from google.cloud import bigquery
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.pipeline import create_warehouse
from devtools.procs import ROOT, Service
from devtools.topology import ensure_subscription, ensure_topic
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.loader import Sink
from shared.telemetrygateway_pb2 import Event
from tests.conftest import PROJECT
from tests.helpers import KeyPair
from tests.integration.descriptors import HUGE, INT64, TEXTS, messages
from tests.integration.messages import field, licensed
from tools import wire

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4000")) // 40  # `make fuzz` raises it
INSTANCE = "inst-lands"
# The privacy policy of this ingest: cody.completion keeps private metadata, other features lose it; this instance
# keeps marketing tracking. So both the kept and the removed paths are generated.
FEATURES = st.sampled_from(["cody.completion", "cody.chat"])
ACTIONS = st.sampled_from(["executed", "a-b.c"])
# Reasons the sink may reject an accepted event with (shared/sink/rows.py); anything else fails the test.
SINK_REASONS = {"invalid_value", "timestamp_out_of_range", "bigquery_row_error"}
# Columns that differ by design between the two encodings' rows of one event: ids, delivery, and `extra` (JSON's
# undeclared fields are kept there, protobuf's are dropped: docs/api.md).
DIFFERENT = {"event_id", "message_id", "request_id", "received_at", "published_at", "inserted_at", "extra"}


@dataclass
class Lands:
    """Ingest in process, its topic's subscription, and a sink on its own dataset."""

    app: object
    license_key: str
    subscriber: object
    subscription: str
    sink: Sink
    bq: bigquery.Client
    dataset: str

    def post(self, data: bytes, content_type: str, refused: str | None = None) -> dict:
        """The 200 answer (or, when `refused` names a code, the 400 whole-request error with it)."""
        resp = self.app.post("/v1/events", data=data, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {self.license_key}", "Accept": "application/json"})
        if refused:
            assert (resp.status_code, resp.get_json()["error"]["code"]) == (400, refused), resp.data[:500]
            return {"succeededEvents": []}
        assert resp.status_code == 200, resp.data[:500]
        return resp.get_json()

    def load_published(self, request_id: str) -> None:
        """Pull until the request's batch came, handing every message pulled to the sink (request logs too)."""
        for _ in range(50):
            pulled = self.subscriber.pull(subscription=self.subscription, max_messages=100, timeout=5)
            found = False
            for received in pulled.received_messages:
                message = received.message
                self.sink.handle({"message": {
                    "data": base64.b64encode(message.data).decode(), "attributes": dict(message.attributes),
                    "messageId": message.message_id, "publishTime": message.publish_time.rfc3339()}})
                found |= message.attributes.get("requestId") == request_id
            if pulled.received_messages:
                self.subscriber.acknowledge(subscription=self.subscription,
                                            ack_ids=[r.ack_id for r in pulled.received_messages])
            if found:
                return
        raise AssertionError(f"the batch of request {request_id} was never published")

    def stored(self, ids: list[str]) -> dict[str, list[tuple[str, dict]]]:
        """Each id's rows: (table, row) in events and rejected_events."""
        found: dict[str, list[tuple[str, dict]]] = {i: [] for i in ids}
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", ids)])
        for table in ("events", "rejected_events"):
            sql = f"SELECT * FROM `{self.dataset}.{table}` WHERE event_id IN UNNEST(@ids)"
            for row in self.bq.query(sql, job_config=config).result():
                found[row["event_id"]].append((table, dict(row)))
        return found


@pytest.fixture(scope="module")
def lands(keys: dict[str, KeyPair], pubsub_emulator: Service, pubsub_clients: tuple, bigquery_emulator,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lands]:
    import functions_framework

    publisher, subscriber = pubsub_clients
    topic = f"lands-{uuid.uuid4().hex[:8]}"
    topic_path = ensure_topic(publisher, PROJECT, topic)
    subscription = ensure_subscription(subscriber, PROJECT, f"{topic}-pull", topic_path)
    files = tmp_path_factory.mktemp("lands")
    (files / "trusted.pub").write_text(keys["prod"].public_path.read_text())
    (files / "allowlist").write_text("cody.completion:*\n")
    (files / "instances").write_text(f"{INSTANCE}\n")
    env = {"TELEMETRY_ENV": "prod", "TRUSTED_LICENSE_KEYS_FILE": str(files / "trusted.pub"), "PUBSUB_TOPIC": topic,
           "GOOGLE_CLOUD_PROJECT": PROJECT, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
           "PRIVATE_METADATA_ALLOWLIST_FILE": str(files / "allowlist"),
           "MARKETING_TRACKING_INSTANCES_FILE": str(files / "instances")}
    warehouse = {**bigquery_emulator.env(), "TELEMETRY_ENV": "prod", "BQ_DATASET": f"lands_{uuid.uuid4().hex[:8]}",
                 "BQ_TIMEOUT_SECONDS": "10"}
    with pytest.MonkeyPatch.context() as patch:  # the settings are read at import; restored afterwards
        for name, value in env.items():
            patch.setenv(name, value)
        app = functions_framework.create_app("ingest", str(ROOT / "functions" / "ingest" / "main.py"))
    config = SinkConfig.from_env(warehouse)
    create_warehouse(config)
    sink = Sink(config)
    yield Lands(app.test_client(), keys["prod"].issue(), subscriber, subscription, sink, bigquery_client(config),
                config.dataset_ref)
    sink.close()


def valid(event: Event, feature: str, action: str, at: datetime) -> Event:
    """The generated event with the fields the event rules constrain made valid (the rest as generated)."""
    event.id = uuid.uuid4().hex
    event.feature, event.action = feature, action
    event.timestamp.FromDatetime(at.replace(tzinfo=None))
    if not 0 < len(event.source.server.version) <= 256:
        event.source.server.version = "5.11.0"
    return event


NOW = datetime.now(UTC)
# Timestamps at the accepted window's edges (EVENT_MAX_AGE_DAYS 365 back, EVENT_MAX_FUTURE_SECONDS 3600 ahead, as
# configured by default; the run's clock moves on, so a minute inside each edge) and in between.
MOMENTS = st.sampled_from([timedelta(days=-365) + timedelta(minutes=1), timedelta(minutes=59), timedelta(0)]) | (
    st.integers(-365 * 86400 + 60, 3540).map(lambda s: timedelta(seconds=s)))
events = st.builds(valid, messages(Event.DESCRIPTOR), FEATURES, ACTIONS, MOMENTS.map(lambda d: datetime.now(UTC) + d))
raw_events = messages(Event.DESCRIPTOR)  # rules and all as generated: mostly refused, some accepted
UNKNOWN = st.sampled_from([b"", field(200, b"from a newer instance"), b"\xa0\x06\x01"])  # field 100 varint


def protobuf_body(events: list[Event], unknown: list[bytes], request_id: str) -> bytes:
    """A RecordEventsBody of the events, each followed by its undeclared fields' bytes."""
    return wire.encode_body(licensed(INSTANCE, request_id=request_id),
                            [e.SerializeToString() + extra for e, extra in zip(events, unknown, strict=True)])


def companion() -> Event:
    """A valid event that must land beside whatever the generated one does."""
    event = Event(id=uuid.uuid4().hex, feature="cody.completion", action="executed")
    event.timestamp.FromDatetime(datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1))
    event.source.server.version = "5.11.0"
    event.parameters.private_metadata.update({"ok": 1})
    return event


def send(lands: Lands, data: bytes, content_type: str, request_id: str, refused: str | None = None) -> list[str]:
    """POST, load what was published; the ids answered as succeeded."""
    return answer_of(lands, data, content_type, request_id, refused)["succeededEvents"]


def answer_of(lands: Lands, data: bytes, content_type: str, request_id: str, refused: str | None = None) -> dict:
    """POST, load what was published; the answer."""
    answer = lands.post(data, content_type, refused)
    for failure in answer.get("failedEvents", []):
        hypothesis.event(f"refused: {failure['reason']}")
    if answer["succeededEvents"]:
        lands.load_published(request_id)
    return answer


def check_landed(lands: Lands, succeeded: list[str], must_be_stored: str) -> dict[str, list[tuple[str, dict]]]:
    """Each succeeded id is in exactly one row of one table; the companion in events; sink rejections typed."""
    stored = lands.stored(succeeded)
    for event_id, rows in stored.items():
        assert len(rows) == 1, (event_id, rows)
        table, row = rows[0]
        if table == "rejected_events":
            assert row["reason"] in SINK_REASONS, row
        hypothesis.event(f"{len(succeeded)} accepted, {table}" + (f" ({row['reason']})" if table != "events" else ""))
    assert [t for t, _ in stored[must_be_stored]] == ["events"]
    return stored


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=events | events | raw_events, unknown=UNKNOWN)
def test_every_accepted_protobuf_event_lands(lands, event, unknown):
    request_id, other = uuid.uuid4().hex, companion()
    succeeded = send(lands, protobuf_body([event, other], [unknown, b""], request_id), wire.CONTENT_TYPE, request_id)
    assert other.id in succeeded
    check_landed(lands, succeeded, other.id)


SURROGATE_MARK = "lone-surrogate-here"
FINITE_JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | TEXTS,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=10)
# JSON that protobuf's mapping never writes: undeclared keys, integers past 64 bits, lone surrogates, explicit nulls,
# int64 as numbers or strings, snake_case names.
JSON_CORNERS = st.fixed_dictionaries({}, optional={
    "newTopLevel": FINITE_JSON, "source.server.build": TEXTS, "interaction.geolocation.city": TEXTS,
    "parameters.privateMetadata.big": st.integers(-(2**70), 2**70), "parameters.privateMetadata.text": TEXTS | HUGE,
    "parameters.privateMetadata.nested": FINITE_JSON,
    "user.userId": INT64 | INT64.map(str) | st.integers(2**63, 2**70) | st.none(),
    "parameters.legacy_metadata": st.dictionaries(st.text(max_size=4), INT64 | INT64.map(str), max_size=3),
    "featureFlags": st.none(), "marketingTracking.url": st.none() | TEXTS,
})


def with_corners(doc: dict, corners: dict) -> dict:
    for path, value in corners.items():
        *parents, name = path.split(".")
        target = doc
        for parent in parents:
            target = target.setdefault(parent, {}) if isinstance(target.get(parent, {}), dict) else {}
        target[name] = value
    return doc


def json_text(event: Event) -> dict | None:
    """The event in proto3 JSON (camelCase or snake_case names), None when JSON cannot hold it (a NaN in a
    Struct)."""
    try:
        return orjson.loads(json_format.MessageToJson(event, indent=None))
    except (json_format.Error, ValueError):
        return None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=events | events | raw_events, corners=JSON_CORNERS, surrogate=st.booleans())
def test_every_accepted_json_event_lands(lands, event, corners, surrogate):
    doc = json_text(event)
    if doc is None:
        doc = json_text(valid(Event(), "cody.chat", "executed", datetime.now(UTC)))
    doc = with_corners(doc, {**corners, **({"parameters.privateMetadata.mark": SURROGATE_MARK} if surrogate else {})})
    request_id, other = uuid.uuid4().hex, companion()
    body = {"metadata": licensed(INSTANCE, request_id=request_id), "events": [doc, json_format.MessageToDict(other)]}
    text = _dumps(body)
    if surrogate:  # a lone surrogate escape, which JSON's grammar allows and UTF-8 cannot hold: a 400 for the request
        text = text.replace(SURROGATE_MARK.encode(), b"\\ud800", 1)
        send(lands, text, "application/json", request_id, refused="malformed_json")
        return
    succeeded = send(lands, text, "application/json", request_id)
    assert other.id in succeeded
    check_landed(lands, succeeded, other.id)


def _dumps(doc: object) -> bytes:
    """JSON bytes of a document that may hold integers beyond 64 bits (which orjson refuses)."""
    import json

    return json.dumps(doc, ensure_ascii=False).encode()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=events, unknown=UNKNOWN, snake_case=st.booleans())
def test_the_same_event_as_json_and_protobuf_lands_as_the_same_row(lands, event, unknown, snake_case):
    try:
        text = json_format.MessageToJson(event, indent=None, preserving_proto_field_name=snake_case)
    except json_format.Error:  # a NaN or infinity in a Struct: JSON cannot hold it (that case: the test above)
        return
    as_json = orjson.loads(text)
    as_json["id"] = uuid.uuid4().hex
    proto_request, json_request = uuid.uuid4().hex, uuid.uuid4().hex
    by_proto = answer_of(lands, protobuf_body([event], [unknown], proto_request), wire.CONTENT_TYPE, proto_request)
    body = {"metadata": licensed(INSTANCE, request_id=json_request), "events": [as_json]}
    by_json = answer_of(lands, orjson.dumps(body), "application/json", json_request)
    verdicts = [(bool(a["succeededEvents"]), [f["reason"] for f in a["failedEvents"]]) for a in (by_proto, by_json)]
    hypothesis.event(f"accepted as protobuf {verdicts[0][0]}, as JSON {verdicts[1][0]}")
    if verdicts[0][0] != verdicts[1][0]:  # sizes count each encoding's own bytes (docs/api.md): only they differ
        assert {reason for _, reasons in verdicts for reason in reasons} <= {"event_too_large"}, verdicts
    if not (verdicts[0][0] and verdicts[1][0]):
        return
    stored = lands.stored([event.id, as_json["id"]])
    ((proto_table, proto_row),), ((json_table, json_row),) = stored[event.id], stored[as_json["id"]]
    assert proto_table == json_table
    differing = {name for name in proto_row if name not in DIFFERENT and proto_row[name] != json_row[name]}
    if proto_table == "rejected_events":
        differing -= {"rejection_id", "raw_event", "rejected_at", "detail"}
    assert not differing, {name: (proto_row[name], json_row[name]) for name in differing}
