"""The HTTP contract of POST /v1/events, runnable against any deployment (`--url`; the licensed cases read
$TELEMETRY_LICENSE_KEY, never a command-line option)."""

from __future__ import annotations

import gzip
import uuid

import orjson
import pytest
import requests

from tests.helpers import make_body, make_event

pytestmark = pytest.mark.contract


def post(base_url: str, data: bytes, license_key: str | None = None, **headers: str) -> requests.Response:
    hdrs = {"Content-Type": "application/json", **headers}
    if license_key:
        hdrs["Authorization"] = f"Bearer {license_key}"
    return requests.post(f"{base_url}/v1/events", data=data, headers=hdrs, timeout=60)


def error_code(resp: requests.Response) -> str:
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()["error"]["code"]


def body(*events: dict) -> bytes:
    return orjson.dumps(make_body(list(events), instance_id=f"contract-{uuid.uuid4().hex[:8]}"))


# --- no license needed: safe against prod -----------------------------------------------------------------

def test_missing_license_is_401(base_url):
    resp = post(base_url, body(make_event()))
    assert resp.status_code == 401 and error_code(resp) == "missing_license"


def test_unparsable_license_is_401(base_url):
    resp = post(base_url, body(make_event()), "this-is-not-a-license")
    assert resp.status_code == 401 and error_code(resp) == "invalid_license"


def test_wrong_scheme_is_401(base_url):
    resp = post(base_url, body(make_event()), **{"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status_code == 401 and error_code(resp) == "invalid_authorization"


def test_wrong_method_is_405(base_url):
    resp = requests.get(f"{base_url}/v1/events", timeout=60)
    assert resp.status_code == 405 and error_code(resp) == "method_not_allowed"


def test_operational_endpoints(base_url):
    version = requests.get(f"{base_url}/__version__", timeout=60)
    assert version.status_code == 200 and set(version.json()) == {"version", "environment"}
    assert requests.get(f"{base_url}/__lbheartbeat__", timeout=60).status_code == 200
    assert requests.get(f"{base_url}/__heartbeat__", timeout=60).json()["status"] == "ok"


# --- licensed: dev deployments (or local) --------------------------------------------------------------------

def test_valid_batch_all_succeed(base_url, license_key):
    events = [make_event() for _ in range(3)]
    resp = post(base_url, body(*events), license_key)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"succeededEvents": [e["id"] for e in events], "failedEvents": [], "warnings": []}


def test_gzip_batch(base_url, license_key):
    event = make_event()
    resp = post(base_url, gzip.compress(body(event)), license_key, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.json()["succeededEvents"] == [event["id"]]


def test_partial_success_names_failures(base_url, license_key):
    good, bad = make_event(), make_event(feature="Not_Valid")
    resp = post(base_url, body(good, bad), license_key)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["succeededEvents"] == [good["id"]]
    assert doc["failedEvents"] == [{"index": 1, "id": bad["id"], "reason": "invalid_event",
                                    "message": doc["failedEvents"][0]["message"], "retryable": False}]


@pytest.mark.parametrize(("data", "headers", "status", "code"), [
    (b"{nope", {}, 400, "malformed_json"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
    (b"{}", {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
])
def test_whole_request_errors(base_url, license_key, data, headers, status, code):
    resp = post(base_url, data, license_key, **headers)
    assert resp.status_code == status and error_code(resp) == code
