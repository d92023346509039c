"""The ingest function over real HTTP (functions-framework) with the real Pub/Sub emulator."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests

from shared.envelope import decode
from shared.ingest.licenses.keys import decode_license
from tests.helpers import gzip_json, make_body, make_event

pytestmark = pytest.mark.integration


def post(server, body: object, license_key: str | None, *, raw: bytes | None = None, **headers: str):
    """POST /v1/events with a license (None: no Authorization header)."""
    hdrs = {"Content-Type": "application/json", **headers}
    if license_key is not None:
        hdrs["Authorization"] = f"Bearer {license_key}"
    data = raw if raw is not None else orjson.dumps(body)
    return requests.post(f"{server.url}/v1/events", data=data, headers=hdrs, timeout=30)


def assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["error"]["code"] == code


def test_valid_batch_published_once_with_identity(prod_server, keys, subscription):
    pull = subscription(prod_server)
    lic = keys["prod"].issue(tags=("plan:enterprise-1",))
    events = [make_event() for _ in range(5)]
    resp = post(prod_server, make_body(events, instance_id="inst-A", request_id="req-1"), lic)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"succeededEvents": [e["id"] for e in events], "failedEvents": [], "warnings": []}
    messages = pull(expect=1)
    assert len(messages) == 1
    batch = decode(messages[0].data, dict(messages[0].attributes))
    assert batch.events == events
    assert batch.request_id == "req-1"
    assert batch.identity.instance_id == "inst-A"
    assert batch.identity.external_url == "https://sg.example.com"
    assert batch.identity.license_fingerprint == decode_license(lic).fingerprint
    assert batch.identity.license_tags == ("plan:enterprise-1",)
    assert batch.identity.environment == "prod"
    attrs = dict(messages[0].attributes)
    assert attrs["instanceId"] == "inst-A"
    assert attrs["eventCount"] == "5"
    assert attrs["environment"] == "prod"
    assert attrs["encoding"] == "gzip" and attrs["schemaVersion"] == "1"
    assert lic.encode() not in gzip.decompress(messages[0].data)


def test_gzip_body_and_ed25519_license(prod_server, keys, subscription):
    pull = subscription(prod_server)
    events = [make_event() for _ in range(3)]
    resp = post(prod_server, None, keys["ed"].issue(), raw=gzip_json(make_body(events)),
                **{"Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["succeededEvents"] == [e["id"] for e in events]
    assert decode(pull()[0].data, {"encoding": "gzip"}).events == events


def test_mixed_batch_reports_each_failure(prod_server, keys, subscription):
    pull = subscription(prod_server)
    good = [make_event(), make_event()]
    old = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    events = [
        good[0],
        make_event(feature="Cody_1"),
        make_event(timestamp=old),
        make_event(timestamp=future),
        make_event(parameters={"metadata": {"x": "not a number"}}),
        "not an object",
        dict(good[0]),
        make_event(source={}),
        good[1],
    ]
    resp = post(prod_server, make_body(events), keys["prod"].issue())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["succeededEvents"] == [good[0]["id"], good[1]["id"]]
    reasons = {f["index"]: f["reason"] for f in body["failedEvents"]}
    assert reasons == {1: "invalid_event", 2: "timestamp_too_old", 3: "timestamp_in_future",
                       4: "invalid_event", 5: "invalid_event", 6: "duplicate_id", 7: "invalid_event"}
    assert all(f["retryable"] is False and f["message"] for f in body["failedEvents"])
    assert body["failedEvents"][0]["id"] == events[1]["id"]
    assert [e["id"] for e in decode(pull()[0].data, {"encoding": "gzip"}).events] == body["succeededEvents"]


def test_legacy_metadata_merged(prod_server, keys, subscription):
    pull = subscription(prod_server)
    event = make_event(parameters={"metadata": {"a": 1}, "legacyMetadata": {"a": "5", "b": "7"}})
    assert post(prod_server, make_body([event]), keys["prod"].issue()).status_code == 200
    published = decode(pull()[0].data, {"encoding": "gzip"}).events[0]
    assert published["parameters"] == {"metadata": {"a": 1, "b": 7.0}}


@pytest.mark.parametrize(
    ("server_name", "signer", "tamper", "status", "code"),
    [
        ("prod", "stranger", None, 401, "untrusted_license"),
        ("prod", "dev", None, 403, "wrong_environment"),
        ("dev", "prod", None, 403, "wrong_environment"),
        ("prod", "prod", "tags", 401, "untrusted_license"),
        ("prod", "prod", "garbage", 401, "invalid_license"),
        ("prod", "prod", "version", 401, "invalid_license"),
        ("prod", "prod", "expired", 403, "license_expired"),
    ],
)
def test_bad_licenses_refused_and_nothing_published(request, keys, subscription, server_name, signer, tamper,
                                                     status, code):
    server = request.getfixturevalue(f"{server_name}_server")
    pull = subscription(server)
    pair = keys[signer]
    if tamper == "expired":
        lic = pair.issue(expires=datetime.now(UTC) - timedelta(days=60))
    elif tamper == "version":
        lic = pair.issue(version=1)
        lic = _retag(lic, v=9)
    elif tamper == "tags":
        lic = _retag(pair.issue(tags=("plan:free",)), t=["plan:enterprise", "true-up"])
    elif tamper == "garbage":
        lic = "not-a-license-key"
    else:
        lic = pair.issue()
    resp = post(server, make_body([make_event()]), lic)
    assert_error(resp, status, code)
    assert pull(expect=0, timeout=2) == []


def _retag(license_key: str, **changes: object) -> str:
    """Change signed info after signing (keeps the old signature)."""
    import base64

    outer = orjson.loads(base64.urlsafe_b64decode(license_key + "=" * (-len(license_key) % 4)))
    info = orjson.loads(base64.b64decode(outer["info"]))
    info.update(changes)
    outer["info"] = base64.b64encode(orjson.dumps(info)).decode()
    return base64.urlsafe_b64encode(orjson.dumps(outer)).decode().rstrip("=")


def test_revoked_license(prod_server, revoked_license, subscription):
    pull = subscription(prod_server)
    assert_error(post(prod_server, make_body([make_event()]), revoked_license), 403, "license_revoked")
    assert pull(expect=0, timeout=2) == []


def test_dev_accepts_dev_license_with_wrapped_whitespace(dev_server, keys, subscription):
    pull = subscription(dev_server)
    lic = keys["dev"].issue(tags=("dev",))
    wrapped = " ".join(lic[i:i + 60] for i in range(0, len(lic), 60)) + "\t"  # header values cannot hold newlines
    assert wrapped != lic and " " in wrapped
    assert post(dev_server, make_body([make_event()]), wrapped).status_code == 200
    (message,) = pull(expect=1)
    doc = orjson.loads(gzip.decompress(message.data))
    assert doc["identity"]["licenseFingerprint"] == decode_license(lic).fingerprint
    assert lic.encode() not in gzip.decompress(message.data)


def test_missing_and_malformed_authorization(prod_server):
    assert_error(post(prod_server, make_body([make_event()]), None), 401, "missing_license")
    resp = requests.post(f"{prod_server.url}/v1/events", json=make_body([]), timeout=10,
                         headers={"Authorization": "Basic abc"})
    assert_error(resp, 401, "invalid_authorization")


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        (b"[1, 2]", {}, 400, "invalid_request"),
        (orjson.dumps({"events": []}), {}, 400, "invalid_metadata"),
        (orjson.dumps({"metadata": {"identifier": {}}, "events": []}), {}, 400, "invalid_metadata"),
        (orjson.dumps({"metadata": {"identifier": {"licensedInstance": {"instanceId": ""}}}, "events": []}),
         {}, 400, "invalid_metadata"),
        (orjson.dumps({"metadata": {"identifier": {"unlicensedInstance": {"instanceId": "x"}}}, "events": []}),
         {}, 403, "unlicensed_not_allowed"),
        (orjson.dumps({"metadata": {"identifier": {"managedService": {"serviceId": "x"}}}, "events": []}),
         {}, 403, "identifier_not_allowed"),
        (orjson.dumps(make_body("nope")), {}, 400, "invalid_request"),
        (orjson.dumps(make_body([])), {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        (orjson.dumps(make_body([])), {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
        (b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}, 400, "bad_gzip"),
        (gzip.compress(orjson.dumps(make_body([])))[:-6], {"Content-Encoding": "gzip"}, 400, "bad_gzip"),
        (orjson.dumps(make_body([make_event() for _ in range(101)])), {}, 413, "too_many_events"),
        (b" " * (300 * 1024), {}, 413, "body_too_large"),
    ],
)
def test_whole_request_errors(prod_server, keys, subscription, raw, headers, status, code):
    pull = subscription(prod_server)
    assert_error(post(prod_server, None, keys["prod"].issue(), raw=raw, **headers), status, code)
    assert pull(expect=0, timeout=1) == []


def test_gzip_bomb_refused_while_inflating(prod_server, keys):
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 100 * 1024
    resp = post(prod_server, None, keys["prod"].issue(), raw=bomb, **{"Content-Encoding": "gzip"})
    assert_error(resp, 413, "body_too_large")
    assert "decompressed" in resp.json()["error"]["message"]


def test_methods_paths_and_operational_endpoints(prod_server):
    resp = requests.get(f"{prod_server.url}/v1/events", timeout=10)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "POST"
    assert_error(requests.get(f"{prod_server.url}/nope", timeout=10), 404, "not_found")
    assert requests.get(f"{prod_server.url}/__heartbeat__", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{prod_server.url}/__lbheartbeat__", timeout=10).status_code == 200
    assert requests.get(f"{prod_server.url}/__version__", timeout=10).json()["environment"] == "prod"


def test_pubsub_down_answers_503_and_nothing_succeeded(server_factory, keys, tmp_path):
    """A gateway whose Pub/Sub endpoint stops answering: 503 + Retry-After, no id listed as succeeded."""
    from devtools.emulators import start_pubsub
    from devtools.topology import clients, ensure_topic

    own = start_pubsub()
    try:
        publisher, _ = clients(own.host)
        ensure_topic(publisher, "test-project", "events-down")
        trusted = tmp_path / "trusted.pub"
        trusted.write_text(keys["prod"].public_path.read_text())
        server = server_factory(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(trusted),
                                PUBSUB_EMULATOR_HOST=own.host, PUBSUB_TOPIC="events-down",
                                PUBLISH_TIMEOUT_SECONDS="2", RETRY_AFTER_SECONDS="7")
        lic = keys["prod"].issue()
        assert post(server, make_body([make_event()]), lic).status_code == 200
        own.stop()
        resp = post(server, make_body([make_event()]), lic)
        assert_error(resp, 503, "pubsub_unavailable")
        assert resp.headers["Retry-After"] == "7"
        assert "succeededEvents" not in resp.json()
        heartbeat = requests.get(f"{server.url}/__heartbeat__", timeout=30)
        assert heartbeat.status_code == 503
    finally:
        own.stop()
