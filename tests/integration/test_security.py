"""Security: key replay policy, oversized headers, slow bodies, secrets kept out of logs."""

from __future__ import annotations

import socket
import time
import uuid

import orjson
import pytest
import requests

from devtools.pipeline import wait_for_rows
from shared.envelope import decode
from shared.ingest.licenses.keys import decode_license
from tests.helpers import make_body, make_event

pytestmark = pytest.mark.integration


def test_valid_key_replayed_for_another_instance_is_accepted_and_traceable(prod_server, keys, subscription):
    """Policy (README): a license may serve several instances; every batch records its fingerprint."""
    pull = subscription(prod_server)
    lic = keys["prod"].issue()
    for instance in ("instance-a", "instance-b"):
        resp = requests.post(f"{prod_server.url}/v1/events", json=make_body([make_event()], instance),
                             headers={"Authorization": f"Bearer {lic}"}, timeout=30)
        assert resp.status_code == 200
    identities = {decode(m.data, dict(m.attributes)).identity for m in pull(expect=2)}
    assert {i.instance_id for i in identities} == {"instance-a", "instance-b"}
    assert {i.license_fingerprint for i in identities} == {decode_license(lic).fingerprint}


def test_oversized_headers_are_4xx(prod_server):
    long_auth = requests.post(f"{prod_server.url}/v1/events", json=make_body([make_event()]), timeout=30,
                              headers={"Authorization": "Bearer " + "A" * 5000})
    assert long_auth.status_code == 401 and long_auth.json()["error"]["code"] == "invalid_authorization"
    huge = requests.post(f"{prod_server.url}/v1/events", json=make_body([make_event()]), timeout=30,
                         headers={"Authorization": "Bearer " + "A" * 70_000})
    assert 400 <= huge.status_code < 500


def test_slow_body_is_cut_with_408(server_factory, keys, tmp_path):
    trusted = tmp_path / "trusted.pub"
    trusted.write_text(keys["prod"].public_path.read_text())
    server = server_factory(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(trusted),
                            BODY_READ_TIMEOUT_SECONDS="1", MAX_REQUEST_BYTES=str(2 * 1024 * 1024))
    length = 1024 * 1024
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {keys['prod'].issue()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        started = time.monotonic()
        try:
            for _ in range(length // 65536):
                sock.sendall(b" " * 65536)
                time.sleep(0.3)
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert "body_timeout" in answer
    assert time.monotonic() - started < 5.5


def test_license_keys_and_private_metadata_never_logged(pipeline):
    sentinel = f"SECRET-{uuid.uuid4().hex}"
    lic = pipeline.issue_license()
    good = make_event(parameters={"metadata": {"n": 1}, "privateMetadata": {"query": sentinel}})
    bad = make_event(feature="Bad_Feature", parameters={"privateMetadata": {"query": sentinel}})
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", data=orjson.dumps(make_body([good, bad])),
                         headers={"Authorization": f"Bearer {lic}", "Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 200 and len(resp.json()["failedEvents"]) == 1
    requests.post(f"{pipeline.ingest.url}/v1/events", json={"broken": sentinel},
                  headers={"Authorization": f"Bearer {lic}"}, timeout=30)
    # This batch's row in BigQuery proves the sink has handled (and logged) this very message.
    table = f"`{pipeline.project}.{pipeline.dataset}.events` WHERE event_id = '{good['id']}'"
    assert wait_for_rows(pipeline.bq(), table, 1, timeout=30) == 1
    for service in (pipeline.ingest, pipeline.sink):
        text = service.log_path.read_text()
        assert sentinel not in text and lic not in text and lic[:40] not in text
