"""The client CLI against real ingest servers and the Pub/Sub emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests

from devtools.procs import free_port
from shared.envelope import decode
from tests.helpers import cli, make_body, make_event
from tools.client import Sender
from tools.generate import generate

pytestmark = pytest.mark.integration


def test_generate_piped_into_send(dev_server, keys, subscription):
    pull = subscription(dev_server)
    generated = cli("generate", "--count", "1200", "--instances", "3", "--days", "2", "--seed", "3")
    assert generated.returncode == 0
    lines = generated.stdout.splitlines()
    assert len(lines) == 1200
    sent = cli("send", "-", "--url", dev_server.url, "--instance-id", "cli-test", "--batch-size", "500",
               stdin=generated.stdout + b"not json\n", license_key=keys["dev"].issue(tags=("dev",)))
    assert sent.returncode == 0, sent.stderr
    assert b"1200 succeeded" in sent.stdout and b"1 unparsable_line" in sent.stdout
    messages = pull(expect=3, timeout=10)
    published = [e for m in messages for e in decode(m.data, dict(m.attributes)).events]
    assert len(published) == 1200 and len({e["id"] for e in published}) == 1200


def test_license_key_only_from_a_file_or_the_environment(dev_server, keys, tmp_path):
    key_file = tmp_path / "license"
    key_file.write_text(keys["dev"].issue(tags=("dev",)) + "\n")
    event = b'{"id": "x"}\n'
    from_file = cli("send", "-", "--url", dev_server.url, "--license-key-file", str(key_file), stdin=event)
    assert from_file.returncode == 0 and b"refused: 1 invalid_event" in from_file.stdout  # authenticated
    assert cli("send", "-", "--url", dev_server.url, "--license-key", "k", stdin=event).returncode == 2
    missing = cli("send", "-", "--url", dev_server.url, stdin=event)
    assert missing.returncode != 0 and b"TELEMETRY_LICENSE_KEY" in missing.stderr


def test_batches_split_when_server_says_too_many(prod_server, keys):
    events = [e for _, e in generate(450, seed=4)]
    report = Sender(prod_server.url, keys["prod"].issue(), "split-test", batch_size=450).send(events)
    assert report.succeeded == 450 and report.ok
    assert report.requests > 4


def test_refused_license_is_reported_not_retried(prod_server, keys):
    events = [e for _, e in generate(30, seed=5)]
    report = Sender(prod_server.url, keys["stranger"].issue(), "x", batch_size=10).send(events)
    assert report.refused == {"untrusted_license": 30} and report.requests == 1 and report.ok


def test_unreachable_gateway_gives_up_with_exit_1():
    sent = cli("send", "-", "--url", f"http://127.0.0.1:{free_port()}", "--max-time", "3",
               stdin=b'{"id": "a"}\n', license_key="k")
    assert sent.returncode == 1 and b"gave up on 1" in sent.stdout


def test_quota_answers_429_and_client_waits(server_factory, keys, tmp_path):
    trusted = tmp_path / "trusted.pub"
    trusted.write_text(keys["prod"].public_path.read_text() + keys["ed"].public_path.read_text())
    server = server_factory(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(trusted),
                            QUOTA_EVENTS_PER_SECOND="100", QUOTA_BURST_EVENTS="200", MAX_EVENTS_PER_REQUEST="200")
    lic = keys["prod"].issue()
    events = [make_event() for _ in range(200)]
    headers = {"Authorization": f"Bearer {lic}"}
    assert requests.post(f"{server.url}/v1/events", json=make_body(events, "q"), headers=headers).status_code == 200
    more = make_body([make_event() for _ in range(50)], "q")
    resp = requests.post(f"{server.url}/v1/events", json=more, headers=headers)
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "quota_exceeded"
    assert int(resp.headers["Retry-After"]) >= 1
    fifty = make_body([make_event() for _ in range(50)], "another")
    same_license = requests.post(f"{server.url}/v1/events", json=fifty, headers=headers)
    assert same_license.status_code == 429  # the quota belongs to the license, whatever the instance id
    other = requests.post(f"{server.url}/v1/events", json=make_body([make_event()], "q"),
                          headers={"Authorization": f"Bearer {keys['ed'].issue()}"})
    assert other.status_code == 200  # another license has its own bucket
    report = Sender(server.url, lic, "q", batch_size=100, max_time_s=30).send([make_event() for _ in range(300)])
    assert report.succeeded == 300 and report.retries >= 1


def test_send_as_protobuf(dev_server, keys, subscription):
    """--format protobuf: RecordEventsBody requests, protobuf answers read; schemaVersion 2 messages published;
    an event with no protobuf form is refused by the client itself."""
    pull = subscription(dev_server)
    generated = cli("generate", "--count", "600", "--seed", "8").stdout
    sent = cli("send", "-", "--url", dev_server.url, "--instance-id", "cli-proto", "--format", "protobuf",
               stdin=generated + b'{"id": "x", "feature": 5}\n' + b'{"id": "y"}\n',
               license_key=keys["dev"].issue(tags=("dev",)))
    assert sent.returncode == 0, sent.stderr
    assert b"600 succeeded" in sent.stdout and b"1 not_encodable" in sent.stdout and b"1 invalid_event" in sent.stdout
    messages = pull(expect=2, timeout=10)
    assert {m.attributes["schemaVersion"] for m in messages} == {"2"}
    batches = [decode(m.data, dict(m.attributes)) for m in messages]
    assert sum(len(b.events) for b in batches) == 600 and {b.wire for b in batches} == {"protobuf"}


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_the_summary_counts_the_gateway_s_warnings(dev_server, keys, fmt):
    stamp = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    events = [make_event(timestamp=stamp), make_event(timestamp=stamp), make_event()]
    sent = cli("send", "-", "--url", dev_server.url, "--format", fmt, stdin=b"".join(
        orjson.dumps(e) + b"\n" for e in events), license_key=keys["dev"].issue(tags=("dev",)))
    assert sent.returncode == 0, sent.stderr
    assert b"3 succeeded (warnings: 2 timestamp_truncated)" in sent.stdout, sent.stdout
