"""The ingest HTTP surface through functions-framework's app: routes, JSON answers, request logs."""

from __future__ import annotations

import gzip
import time

import orjson
import pytest

from shared.envelope import decode_requests
from shared.ingest.config import IngestConfig
from shared.ingest.http import Gateway
from tests.helpers import make_body, make_event


def post(client, body: object, license_key: str | None = None, **headers: str):
    hdrs = {"Content-Type": "application/json", **headers}
    if license_key:
        hdrs["Authorization"] = f"Bearer {license_key}"
    return client.post("/v1/events", data=orjson.dumps(body), headers=hdrs)


def test_events_are_published_and_answered(ingest_app, keys, pull):
    client = ingest_app()
    events = [make_event(), make_event(feature="Not_Valid")]
    resp = post(client, make_body(events, instance_id="unit-1"), keys["dev"].issue(tags=("dev",)))
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.json["succeededEvents"] == [events[0]["id"]]
    assert [(f["index"], f["reason"]) for f in resp.json["failedEvents"]] == [(1, "invalid_event")]
    (message,) = pull()
    doc = orjson.loads(gzip.decompress(message.data))
    assert [e["id"] for e in doc["events"]] == [events[0]["id"]] and message.attributes["instanceId"] == "unit-1"


def test_operational_endpoints(ingest_app):
    client = ingest_app(GATEWAY_VERSION="v-unit")
    assert client.get("/__version__").json == {"version": "v-unit", "environment": "dev"}
    assert client.get("/__lbheartbeat__").status_code == 200
    beat = client.get("/__heartbeat__")
    assert beat.status_code == 200 and beat.json["checks"] == {"pubsub_topic": True}


def test_heartbeat_fails_when_the_topic_is_missing(ingest_app):
    beat = ingest_app(PUBSUB_TOPIC="no-such-topic").get("/__heartbeat__")
    assert beat.status_code == 503 and beat.json == {"status": "error", "checks": {"pubsub_topic": False}}


@pytest.mark.parametrize(("method", "path", "status", "code", "allow"), [
    ("GET", "/v1/events", 405, "method_not_allowed", "POST"),
    ("POST", "/__version__", 405, "method_not_allowed", "GET"),
    ("GET", "/elsewhere", 404, "not_found", None)])
def test_routing_errors_are_json(ingest_app, method, path, status, code, allow):
    resp = ingest_app().open(path, method=method)
    assert resp.status_code == status and resp.json["error"]["code"] == code
    assert resp.headers.get("Allow") == allow


def test_error_answers_carry_retry_after(ingest_app, keys):
    client = ingest_app(QUOTA_EVENTS_PER_SECOND="1", QUOTA_BURST_EVENTS="1", MAX_EVENTS_PER_REQUEST="1")
    lic = keys["dev"].issue(tags=("dev",))
    assert post(client, make_body([make_event()]), lic).status_code == 200
    resp = post(client, make_body([make_event()]), lic)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.json["error"]["code"] == "quota_exceeded"


def test_our_own_bug_is_a_json_500_with_its_traceback_logged(keys, capsys):
    class Broken:
        publisher = None

        def handle(self, request: object, facts: object = None) -> None:
            raise KeyError("a bug of ours")

    config = IngestConfig.from_env({"TELEMETRY_ENV": "dev", "REQUEST_LOG": "false"})
    import flask

    app = flask.Flask(__name__)
    gateway = Gateway(config, Broken())  # the catch-all cannot be reached through valid wiring
    app.add_url_rule("/<path:p>", "any", lambda p: gateway.route(flask.request), methods=["POST"])
    resp = app.test_client().post("/v1/events", data=b"{}")
    assert resp.status_code == 500 and resp.json == {"error": {"code": "internal", "message": "internal error"}}
    line = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR" and line["reasonCode"] == "internal"
    assert "KeyError: 'a bug of ours'" in line["traceback"] and "in handle" in line["traceback"]


def test_heartbeat_asks_pubsub_at_most_once_per_10_s(ingest_app, monkeypatch):
    import sys

    client = ingest_app()
    publisher = sys.modules["main"].GATEWAY.record.publisher
    calls = []
    real = publisher.topic_exists
    monkeypatch.setattr(publisher, "topic_exists", lambda: calls.append(1) or real())
    for _ in range(25):
        assert client.get("/__heartbeat__").status_code == 200
    assert len(calls) == 1  # the public endpoint cannot be used to flood Pub/Sub's admin API


def test_clients_behind_the_edge_each_get_their_own_refused_rows_budget(ingest_app, pull):
    """Behind the load balancer every request's X-Forwarded-For ends with its address: with EDGE_ADDRESS set, two
    clients' refused requests are bounded each on its own (REQUEST_LOG_REFUSED_PER_CLIENT), not as one."""
    edge = "34.120.0.9"
    client = ingest_app(EDGE_ADDRESS=edge, REQUEST_LOG_REFUSED_PER_CLIENT="2", REQUEST_LOG_FLUSH_SECONDS="0.2")
    for address in ("198.51.100.1", "198.51.100.2"):
        for _ in range(4):
            resp = post(client, make_body([make_event()]), **{"X-Forwarded-For": f"{address}, {edge}"})
            assert resp.status_code == 401
    time.sleep(0.3)  # the rows are due: the next request publishes them at its end
    post(client, make_body([make_event()]), **{"X-Forwarded-For": f"198.51.100.3, {edge}"})
    rows: list[dict] = []
    deadline = time.monotonic() + 15
    while sum(r["outcome"] == "refused" for r in rows) < 5 and time.monotonic() < deadline:
        rows += [row for m in pull(requests=True) for row in decode_requests(m.data, dict(m.attributes))]
    assert sum(r["outcome"] == "refused" for r in rows) == 5  # 2 + 2 + the third's 1; as one client: 2
