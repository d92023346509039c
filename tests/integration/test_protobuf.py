"""POST /v1/events with protobuf bodies (RecordEventsBody) through the whole pipeline, against the JSON path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests
from google.protobuf import json_format
from isal import igzip

from devtools.topology import ensure_subscription
from shared.gateway_pb2 import RecordEventsAnswer
from tests.helpers import make_body
from tests.integration.messages import as_json, base_event, full_event, licensed, post_protobuf, zero_event
from tests.integration.rows import rows_for, send, wait_rows
from tools import wire

pytestmark = pytest.mark.integration
# Columns that differ between two requests by design (their ids and times); every other one must be equal.
PER_REQUEST = {"event_id", "request_id", "message_id", "received_at", "published_at", "inserted_at"}


def accepted(resp: requests.Response) -> list[str]:
    assert resp.status_code == 200, resp.content
    assert resp.headers["Content-Type"].startswith(wire.CONTENT_TYPE)
    answer = RecordEventsAnswer.FromString(resp.content)
    assert not answer.failed_events, answer
    return list(answer.succeeded_events)


def test_every_field_lands_as_the_json_path_gives_it(pipeline):
    """Events built by the protobuf library (every field; optional fields at zero; maps; Struct; int64 extremes;
    nanoseconds), sent as protobuf and, under other ids, as their proto3 JSON: the rows agree column by column."""
    when = datetime.now(UTC).replace(microsecond=654321) - timedelta(minutes=3)
    messages = [full_event(when), zero_event(when), base_event(when)]
    twins = []
    for message in messages:
        twin = as_json(message)
        twin["id"] = f"{message.id}-json"
        twins.append(twin)
    license_key = pipeline.issue_license()
    metadata = licensed("inst-columns", external_url=make_body([], "x")["metadata"]["identifier"][
        "licensedInstance"]["externalUrl"])  # the JSON requests' own
    ids = accepted(post_protobuf(pipeline.ingest.url, metadata, messages, license_key))
    assert ids == [m.id for m in messages]
    assert send(pipeline, twins, "inst-columns", license_key)["succeededEvents"] == [t["id"] for t in twins]
    got = {row.event_id: dict(row.items()) for row in wait_rows(pipeline, "events", ids + [t["id"] for t in twins],
                                                                 2 * len(messages))}
    for message in messages:
        proto_row, json_row = got[message.id], got[f"{message.id}-json"]
        differing = {k: (proto_row[k], json_row[k]) for k in proto_row if k not in PER_REQUEST
                     and proto_row[k] != json_row[k]}
        assert not differing, f"{message.id}: {differing}"
    full = got[messages[0].id]
    assert full["user_id"] == 9007199254740993 and full["metadata"]["max"] == 2**63 - 1
    assert full["timestamp"] == when and full["private_metadata"]["nested"] == {"list": [1, "a", None]}
    zero = got[messages[1].id]
    assert (zero["user_id"], zero["anonymous_user_id"], zero["client_version"]) == (0, "", "")
    assert zero["redacted_fields"] == [] and zero["extra"] is None


def test_a_nan_in_a_struct_is_stored_as_null_and_its_batch_lands_whole(pipeline):
    """Issue 29's report: five events on an allowlisted feature, one with privateMetadata {"nan": NaN, "ok": 1}. All
    five are answered as succeeded, that one with the warning non_finite_nulled, and all five land in `events`."""
    events = [base_event(datetime.now(UTC) - timedelta(minutes=2)) for _ in range(5)]
    events[2].parameters.private_metadata.update({"nan": float("nan"), "ok": 1, "list": [float("-inf"), 2]})
    resp = post_protobuf(pipeline.ingest.url, licensed("inst-nan"), events, pipeline.issue_license(),
                         accept="application/json")
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["succeededEvents"] == [e.id for e in events] and answer["failedEvents"] == []
    assert [(w["index"], w["code"]) for w in answer["warnings"]] == [(2, "non_finite_nulled")]
    rows = {r.event_id: r for r in wait_rows(pipeline, "events", [e.id for e in events], 5)}
    assert set(rows) == {e.id for e in events}
    assert rows[events[2].id].private_metadata == {"nan": None, "ok": 1, "list": [None, 2]}
    assert rows_for(pipeline, "rejected_events", [e.id for e in events]) == []


def test_mixed_encodings_from_one_instance_deduplicate_as_one_stream(pipeline):
    """The same events sent as JSON and again as protobuf (a client switching encodings mid-retry): once each
    in events_deduped."""
    instance = f"inst-mixed-{uuid.uuid4().hex[:6]}"
    when = datetime.now(UTC) - timedelta(minutes=1)
    messages = [base_event(when) for _ in range(6)]
    license_key = pipeline.issue_license()
    send(pipeline, [as_json(m) for m in messages[:4]], instance, license_key)
    accepted(post_protobuf(pipeline.ingest.url, licensed(instance), messages[2:], license_key))
    ids = [m.id for m in messages]
    raw = wait_rows(pipeline, "events", ids, 8)
    assert len(raw) == 8  # 2 sent both ways
    deduped = wait_rows(pipeline, "events_deduped", ids, 6)
    assert sorted(r.event_id for r in deduped) == sorted(ids)


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_a_license_in_the_body_is_verified_and_never_published_or_stored(pipeline, encoding):
    """No Authorization header: the key in metadata.identifier.licensedInstance.licenseKey is verified; it is in
    no Pub/Sub message, no log line and no row."""
    instance = f"inst-bodykey-{uuid.uuid4().hex[:6]}"
    license_key = pipeline.issue_license()
    watch = ensure_subscription(pipeline.subscriber, pipeline.project, f"watch-{uuid.uuid4().hex[:6]}",
                                pipeline.topic_path)
    log_start = len(pipeline.ingest.log_path.read_bytes())
    event = base_event(datetime.now(UTC))
    if encoding == "protobuf":
        assert accepted(post_protobuf(pipeline.ingest.url, licensed(instance, license_key), [event])) == [event.id]
    else:
        body = {"metadata": licensed(instance, license_key), "events": [as_json(event)]}
        resp = requests.post(f"{pipeline.ingest.url}/v1/events", json=body, timeout=30)
        assert resp.status_code == 200 and resp.json()["succeededEvents"] == [event.id], resp.text
    (row,) = wait_rows(pipeline, "events", [event.id], 1)
    assert row.instance_id == instance and row.license_fingerprint
    assert license_key not in str(dict(row.items()))
    messages = pipeline.subscriber.pull(subscription=watch, max_messages=10, timeout=10).received_messages
    assert messages and all(license_key.encode() not in igzip.decompress(m.message.data) for m in messages)
    assert license_key.encode() not in pipeline.ingest.log_path.read_bytes()[log_start:]


def test_the_header_wins_over_a_license_in_the_body(pipeline):
    """A bad key in the header is refused even when the body carries a good one."""
    good = pipeline.issue_license()
    resp = post_protobuf(pipeline.ingest.url, licensed("inst-header", good), [base_event(datetime.now(UTC))],
                         license_key="not-a-license")
    assert resp.status_code == 401
    assert wire.error_reason(resp.content) == "invalid_license"


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"\x0a\x05abc", 400, "malformed_protobuf"),  # metadata's length runs past the end
    (b"\x12", 400, "malformed_protobuf"),  # a cut frame
    (b"\x12\x80\x80\x80\x80\x10", 400, "malformed_protobuf"),  # an event of 4 GiB in a tiny body
    (b"\x0b\x00", 400, "malformed_protobuf"),  # a group (wire type 3)
    (b"\x0a\x00\x0a\x00", 400, "invalid_metadata"),  # metadata sent twice
    (b"\x12\x00", 400, "invalid_metadata"),  # no metadata at all
    (b"\x0a\x02\x12\x00" + b"\x12\x00" * 1001, 413, "too_many_events"),
])
def test_broken_bodies_get_the_documented_4xx(pipeline, body, status, code):
    """Over real HTTP, answered in protobuf (google.rpc.Status with the reason code) without Accept, as OTLP/HTTP
    answers in the request's encoding, and with Accept naming protobuf; in JSON when Accept asks for it."""
    headers = {"Content-Type": wire.CONTENT_TYPE, "Authorization": f"Bearer {pipeline.issue_license()}"}
    for accept in ({}, {"Accept": wire.CONTENT_TYPE}, {"Accept": "*/*"}):
        as_proto = requests.post(f"{pipeline.ingest.url}/v1/events", data=body, timeout=30,
                                 headers={**headers, **accept})
        assert (as_proto.status_code, wire.error_reason(as_proto.content)) == (status, code), accept
    as_json_answer = requests.post(f"{pipeline.ingest.url}/v1/events", data=body, timeout=30,
                                   headers={**headers, "Accept": "application/json"})
    assert (as_json_answer.status_code, as_json_answer.json()["error"]["code"]) == (status, code)


def test_per_event_verdicts_match_the_json_answer(pipeline):
    """A batch with refused events: the same indexes, ids, reasons and retryable flags in both answers."""
    now = datetime.now(UTC)
    good, no_feature, dup = base_event(now), base_event(now), base_event(now)
    future = base_event(now + timedelta(days=2))
    no_feature.feature = ""
    dup.id = good.id
    messages = [good, no_feature, future, dup]
    license_key = pipeline.issue_license()
    resp = post_protobuf(pipeline.ingest.url, licensed(f"inst-verdicts-{uuid.uuid4().hex[:6]}"), messages,
                         license_key)
    answer = wire.decode_answer(resp.content)
    json_answer = send(pipeline, [{**as_json(m), "id": m.id} for m in messages], f"inst-vj-{uuid.uuid4().hex[:6]}",
                       license_key)
    assert answer["succeededEvents"] == [good.id] == json_answer["succeededEvents"]
    assert [(f["index"], f["id"], f["reason"], f["retryable"]) for f in answer["failedEvents"]] == [
        (f["index"], f["id"], f["reason"], f["retryable"]) for f in json_answer["failedEvents"]]
    assert [f["reason"] for f in answer["failedEvents"]] == ["invalid_event", "timestamp_in_future", "duplicate_id"]
    assert len(wait_rows(pipeline, "events", [good.id], 2)) == 2  # once from each request
    assert rows_for(pipeline, "events", [no_feature.id, future.id]) == []  # the refused were not published


def test_unknown_fields_are_dropped_and_counted(pipeline):
    """A field this .proto does not declare (a newer instance's): the event lands without it; the request's log
    line counts the bytes dropped."""
    event = base_event(datetime.now(UTC))
    extended = event.SerializeToString() + b"\xf8\x07\x2a"  # field 127, varint 42
    log_start = len(pipeline.ingest.log_path.read_bytes())
    body = wire.encode_body(licensed("inst-unknown"), [extended])
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", data=body, timeout=30, headers={
        "Content-Type": wire.CONTENT_TYPE, "Authorization": f"Bearer {pipeline.issue_license()}",
        "Accept": "application/json"})
    assert resp.json()["succeededEvents"] == [event.id]
    (row,) = wait_rows(pipeline, "events", [event.id], 1)
    assert row.extra is None
    assert '"unknownFieldBytes":3' in pipeline.ingest.log_path.read_text()[log_start:]
    assert json_format.MessageToDict(event)["id"] == row.event_id


def test_the_documented_curl_example(pipeline, tmp_path):
    """docs/api.md's protobuf example, run as written: tools.wire makes the body, curl sends it."""
    import subprocess

    from devtools.procs import ROOT
    from tools.generate import generate

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for _, e in generate(3, days=1, seed=77)))
    script = ("python -m tools.wire body events.jsonl --instance-id my-instance > body.pb && "
              'curl -sS -X POST "$URL/v1/events" -H "Authorization: Bearer $LICENSE_KEY" '
              "-H 'Content-Type: application/x-protobuf' -H 'Accept: application/x-protobuf' "
              "--data-binary @body.pb | python -m tools.wire answer")
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "URL": pipeline.ingest.url,
           "LICENSE_KEY": pipeline.issue_license()}
    done = subprocess.run(["bash", "-c", script.replace("events.jsonl", str(events)).replace(
        "body.pb", str(tmp_path / "body.pb"))], capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    assert len(answer["succeededEvents"]) == 3 and answer["failedEvents"] == []
