"""The request log end to end: a known mix of requests -> exact rows in `requests` and `daily_ingestion_health`.

Instance X sends good batches, a batch with refused events, a redaction, a body too large and a quota hit; instance
Y's license is revoked after its first batch; a prod license knocks on the dev gateway; a stranger floods it with
one bad license (bounded rows, the rest counted).
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import requests
from google.cloud import bigquery

from devtools.functions import start_function
from shared.ingest.licenses.keys import decode_license
from shared.sink.warehouse import refresh
from tests.helpers import make_body, make_event
from tests.integration.rows import flush_request_log, request_rows, table, wait_rows

pytestmark = pytest.mark.integration
PER_CLIENT, WINDOW_S, FLOOD = 5, 3, 30
LATE = timedelta(minutes=5)


def fingerprint(key: str) -> str:
    return decode_license(key).fingerprint


@pytest.fixture(scope="module")
def scene(pipeline, keys, tmp_path_factory):
    """Two ingest servers of the pipeline's deployment, before and after Y's license was revoked (the second with a
    small quota, a small body limit and a short request-log window); the keys of the scene."""
    base = tmp_path_factory.mktemp("request-log")
    revoked = keys["dev"].issue(tags=("dev", "plan:revoked"))
    trusted = base / "trusted.pub"
    trusted.write_text((pipeline.workdir / "license-key.pub").read_text() + keys["dev"].public_path.read_text())
    (base / "revoked.txt").write_text(f"{fingerprint(revoked)}  # revoked in the test\n")
    common = {**pipeline.env, "TRUSTED_LICENSE_KEYS_FILE": str(trusted), "MAX_EVENTS_PER_REQUEST": "10",
              "REQUEST_LOG_WINDOW_SECONDS": str(WINDOW_S), "REQUEST_LOG_REFUSED_PER_CLIENT": str(PER_CLIENT)}
    before = start_function("ingest", common)
    try:
        after = start_function("ingest", {**common, "REVOKED_LICENSES_FILE": str(base / "revoked.txt"),
                                          "OTHER_ENV_LICENSE_KEYS_FILE": str(keys["prod"].public_path),
                                          "QUOTA_BURST_EVENTS": "10", "QUOTA_EVENTS_PER_SECOND": "0.001",
                                          "MAX_REQUEST_BYTES": "65536"})
        try:
            yield {"before": before, "after": after, "revoked": revoked, "x": pipeline.issue_license(),
                   "wrong_env": keys["prod"].issue(), "stranger": keys["stranger"].issue(tags=("dev",))}
        finally:
            after.stop()
    finally:
        before.stop()


def post(server, key: str, events: list, instance: str, raw: bytes | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": "reqlog-test/1"}
    if raw is not None:
        headers["Content-Encoding"] = "gzip"
    data = raw if raw is not None else orjson.dumps(make_body(events, instance))
    return requests.post(f"{server.url}/v1/events", data=data, headers=headers, timeout=30)


def recent(**overrides) -> dict:
    stamp = (datetime.now(UTC) - LATE).isoformat().replace("+00:00", "Z")
    return make_event(timestamp=stamp, **overrides)


def sent(scene) -> dict:
    """Send the mix once; return the instances' ids and the answers that matter."""
    x, y = f"inst-x-{uuid.uuid4().hex[:6]}", f"inst-y-{uuid.uuid4().hex[:6]}"
    after, key = scene["after"], scene["x"]
    answers = {}
    answers["good"] = post(after, key, [recent(), recent(), recent()], x)
    answers["mixed"] = post(after, key, [recent(), recent(), recent(feature="Bad"),
                                         make_event(timestamp="2020-01-01T00:00:00Z")], x)
    # The day's latest event (a second after the others), with digits below the microsecond.
    stamp = (datetime.now(UTC) - LATE + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    answers["redacted"] = post(after, key, [make_event(
        timestamp=stamp, feature="search.results", action="viewed", source={"server": {"version": "5.4.0"}},
        parameters={"privateMetadata": {"query": "never stored"}})], x)
    answers["too_large"] = post(after, key, [], x, raw=gzip.compress(b" " * 70_000 + orjson.dumps(make_body([], x))))
    answers["quota"] = post(after, key, [recent(), recent(), recent()], x)
    answers["y_before"] = post(scene["before"], scene["revoked"], [recent()], y)
    answers["y_revoked"] = [post(after, scene["revoked"], [recent()], y) for _ in range(2)]
    answers["wrong_env"] = post(after, scene["wrong_env"], [recent()], x)
    answers["flood"] = [post(after, scene["stranger"], [recent()], "inst-flood") for _ in range(FLOOD)]
    return {"x": x, "y": y, "answers": answers}


@pytest.fixture(scope="module")
def mix(pipeline, scene) -> dict:
    """The mix, then what publishes its rows: a later request to each server, once they are due and the bounds'
    window has ended (the request log has no background thread: docs/api.md)."""
    mixed = sent(scene)
    for n, server in enumerate((scene["before"], scene["after"])):
        flush_request_log(server.url, WINDOW_S + 0.5 if n == 0 else 0)
    return mixed


def test_the_answers_of_the_mix(mix):
    a = mix["answers"]
    assert [a[k].status_code for k in ("good", "mixed", "redacted", "too_large", "quota", "y_before")] == [
        200, 200, 200, 413, 429, 200]
    assert [r.status_code for r in a["y_revoked"]] == [403, 403] and a["wrong_env"].status_code == 403
    assert {r.status_code for r in a["flood"]} == {401}
    warnings = a["redacted"].json()["warnings"]
    assert [(w["index"], w["code"]) for w in warnings] == [(0, "timestamp_truncated"), (0, "private_metadata_removed")]
    assert a["good"].json()["warnings"] == []


def test_every_request_of_the_mix_leaves_its_row(pipeline, scene, mix):
    x_rows = request_rows(pipeline, "instance_id", [mix["x"]], 4)
    by_outcome = {r["outcome"]: r for r in x_rows if r["status"] == 200}
    assert Counter(r["outcome"] for r in x_rows) == {"accepted": 2, "partial": 1, "refused": 1}  # + the 413 below
    assert by_outcome["partial"]["refused"] == {"invalid_event": 1, "timestamp_too_old": 1}
    redacted = next(r for r in x_rows if r["redacted"])
    assert (redacted["redacted"], redacted["warnings"]) == (
        {"parameters.privateMetadata": 1}, {"private_metadata_removed": 1, "timestamp_truncated": 1})
    [quota] = [r for r in x_rows if r["status"] == 429]
    assert (quota["error_code"], quota["events"], quota["accepted"]) == ("quota_exceeded", 3, None)
    # Refused before the body was read: known by the license they present, never by the body they carry.
    license_rows = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["x"])], 5)
    [too_large] = [r for r in license_rows if r["status"] == 413]
    assert (too_large["instance_id"], too_large["error_code"], too_large["content_encoding"]) == (
        None, "body_too_large", "gzip")
    revoked = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["revoked"])], 3)
    assert sorted((r["status"], r["error_code"]) for r in revoked) == [(200, None), (403, "license_revoked"),
                                                                       (403, "license_revoked")]
    [wrong] = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["wrong_env"])], 1)
    assert (wrong["status"], wrong["error_code"], wrong["caller_kind"]) == (403, "wrong_environment", None)
    for row in x_rows + license_rows + revoked:
        assert row["user_agent"] == "reqlog-test/1" and row["environment"] == "dev"
        assert row["received_at"] <= row["inserted_at"]
        assert "never stored" not in orjson.dumps(row, default=str).decode()


def test_a_flood_of_bad_licenses_leaves_a_bounded_number_of_rows(pipeline, scene, mix):
    rows = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["stranger"])], PER_CLIENT + 1,
                        timeout=WINDOW_S + 60)
    time.sleep(2)  # nothing else arrives
    rows = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["stranger"])], PER_CLIENT + 1)
    assert Counter(r["outcome"] for r in rows) == {"refused": PER_CLIENT, "suppressed": 1}
    [suppressed] = [r for r in rows if r["outcome"] == "suppressed"]
    assert suppressed["suppressed"] == FLOOD - PER_CLIENT
    assert suppressed["suppressed_by_code"] == {"untrusted_license": FLOOD - PER_CLIENT}


def health_rows(pipeline, instances: list[str], days: list[date]) -> dict[str, list[dict]]:
    refresh.rebuild(pipeline.bq(), pipeline.dataset_ref, days)
    query = f"SELECT * FROM {table(pipeline, 'daily_ingestion_health')} WHERE instance_id IN UNNEST(@ids)"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", instances)])
    found: dict[str, list[dict]] = {}
    for row in pipeline.bq().query(query, job_config=config).result():
        found.setdefault(row.instance_id, []).append(dict(row.items()))
    return found


def summed(rows: list[dict], *names: str) -> dict:
    """Counts over the test's days (a mix sent across midnight spans two)."""
    return {name: sum(r[name] for r in rows) for name in names}


def merged(rows: list[dict], name: str) -> dict:
    total: Counter = Counter()
    for row in rows:
        total.update(row[name] or {})
    return dict(total)


def test_the_health_table_counts_the_mix_per_instance(pipeline, scene, mix):
    x_rows = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["x"])], 5)
    y_rows = request_rows(pipeline, "license_fingerprint", [fingerprint(scene["revoked"])], 3)
    answers = mix["answers"]
    accepted = [i for k in ("good", "mixed", "redacted", "y_before") for i in answers[k].json()["succeededEvents"]]
    assert len(wait_rows(pipeline, "events", accepted, len(accepted))) == len(accepted)  # the refresh reads them
    days = sorted({r["received_at"].date() for r in x_rows + y_rows} | {(datetime.now(UTC) - LATE).date()})
    health = health_rows(pipeline, [mix["x"], mix["y"]], days)
    x, y = health[mix["x"]], health[mix["y"]]
    assert summed(x, "requests", "accepted_requests", "events_sent", "events_accepted", "unauthorized_401",
                  "forbidden_403", "too_large_413", "throttled_429", "other_refused", "failed_5xx", "suppressed") == {
        "requests": 5, "accepted_requests": 3, "events_sent": 3 + 4 + 1 + 3, "events_accepted": 3 + 2 + 1,
        "unauthorized_401": 0, "forbidden_403": 0, "too_large_413": 1, "throttled_429": 1, "other_refused": 0,
        "failed_5xx": 0, "suppressed": 0}
    assert merged(x, "refused") == {"invalid_event": 1, "timestamp_too_old": 1}
    assert merged(x, "redacted") == {"parameters.privateMetadata": 1}
    assert merged(x, "warnings") == {"private_metadata_removed": 1, "timestamp_truncated": 1}
    # Y's 403s name Y: the last events of the revoked license came from Y.
    assert summed(y, "requests", "accepted_requests", "events_accepted", "forbidden_403") == {
        "requests": 3, "accepted_requests": 1, "events_accepted": 1, "forbidden_403": 2}
    [x_day] = [r for r in x if r["lateness_p50_s"] is not None]
    assert LATE.total_seconds() - 1 < x_day["lateness_p50_s"] <= x_day["lateness_p95_s"] < LATE.total_seconds() + 60
    assert x_day["server_version"] == "5.4.0"  # the redacted event is the day's latest


def test_rows_still_waiting_are_published_when_an_instance_shuts_down(pipeline, tmp_path):
    """A Cloud Run instance gets SIGTERM before it goes: the rows its flusher has not published yet go out."""
    from devtools.topology import ensure_subscription
    from shared.envelope import decode_requests, is_requests

    watch = ensure_subscription(pipeline.subscriber, pipeline.project, f"reqlog-{uuid.uuid4().hex[:8]}",
                                pipeline.topic_path)
    server = start_function("ingest", {**pipeline.env, "REQUEST_LOG_FLUSH_SECONDS": "600"})
    marker = f"shutdown-{uuid.uuid4().hex[:8]}"
    try:
        resp = requests.post(f"{server.url}/v1/events", data=b"{}", timeout=10,
                             headers={"Content-Type": "application/json", "User-Agent": marker})
    finally:
        server.stop()  # SIGTERM: gunicorn's graceful exit
    assert resp.status_code == 400
    deadline, rows = time.monotonic() + 20, []
    while not rows and time.monotonic() < deadline:
        got = pipeline.subscriber.pull(subscription=watch, max_messages=100, timeout=5).received_messages
        if got:
            pipeline.subscriber.acknowledge(subscription=watch, ack_ids=[m.ack_id for m in got])
        rows += [r for m in got if is_requests(m.message.attributes)
                 for r in decode_requests(m.message.data, dict(m.message.attributes)) if r["user_agent"] == marker]
    pipeline.subscriber.delete_subscription(subscription=watch)
    assert [(r["status"], r["error_code"]) for r in rows] == [(400, resp.json()["error"]["code"])]


def test_rows_land_with_the_instance_frozen_between_requests(pipeline):
    """Request-based billing: an instance has no CPU between requests (devtools.front's freeze stops its process
    group whenever none is in flight). A due row goes out at the end of the next request, the last one at shutdown;
    no failure is counted because of the freeze."""
    from devtools.front import Front
    from devtools.topology import ensure_subscription
    from shared.envelope import decode_requests, is_requests

    watch = ensure_subscription(pipeline.subscriber, pipeline.project, f"frozen-{uuid.uuid4().hex[:8]}",
                                pipeline.topic_path)
    server = start_function("ingest", {**pipeline.env, "REQUEST_LOG_FLUSH_SECONDS": "0.5"})
    front = Front(server.url, slots=8, freeze=server.signal).start()
    markers = [f"frozen-{n}-{uuid.uuid4().hex[:8]}" for n in range(2)]
    log_start = len(server.log_path.read_bytes()) if server.log_path.exists() else 0
    try:
        for n, marker in enumerate(markers):
            resp = requests.post(f"{front.url}/v1/events", data=b"{}", timeout=30,
                                 headers={"Content-Type": "application/json", "User-Agent": marker})
            assert resp.status_code == 400
            if n == 0:
                time.sleep(1.0)  # frozen meanwhile: nothing of the instance runs
                stat = Path(f"/proc/{server.proc.pid}/stat").read_text()
                state = stat.rsplit(")", 1)[1].split()[0]
                assert state == "T", state
    finally:
        front.thaw()
        front.stop()
        server.stop()  # SIGTERM, with CPU: what still waits is published at exit
    deadline, rows = time.monotonic() + 30, []
    while len(rows) < 2 and time.monotonic() < deadline:
        got = pipeline.subscriber.pull(subscription=watch, max_messages=100, timeout=5).received_messages
        if got:
            pipeline.subscriber.acknowledge(subscription=watch, ack_ids=[m.ack_id for m in got])
        rows += [r for m in got if is_requests(m.message.attributes)
                 for r in decode_requests(m.message.data, dict(m.message.attributes)) if r["user_agent"] in markers]
    pipeline.subscriber.delete_subscription(subscription=watch)
    assert sorted(r["user_agent"] for r in rows) == sorted(markers)
    assert "request_log_failed" not in server.log_path.read_bytes()[log_start:].decode()
