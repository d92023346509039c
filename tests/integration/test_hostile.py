"""Attacks a license holder (or whoever holds a leaked key) can make on the public endpoint, measured.

Each test performs the attack over real HTTP against functions-framework/gunicorn as deployed (1 worker,
8 threads) and asserts on what it measures: events accepted, seconds, the worker's peak RSS.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime

import orjson
import pytest
import requests

from shared.ingest.licenses.keys import decode_license
from tests.helpers import make_body, make_event
from tests.integration.attacks import (
    JSON_TYPE,
    MIB,
    answer_of,
    concurrently,
    memory_mib,
    post,
    trickle,
    worker,
)
from tests.integration.messages import base_event, licensed
from tools import wire
from tools.signing import encode_license

pytestmark = pytest.mark.integration


def events(n: int) -> list[dict]:
    return [make_event() for _ in range(n)]


@pytest.fixture
def quota_server(server_factory, keys, tmp_path_factory):
    """A dev server with a small quota (100 events/s, bursts of 1,000), fresh buckets for each test."""

    def start(name: str):
        trusted = tmp_path_factory.mktemp("quota") / "trusted.pub"
        trusted.write_text(keys["dev"].public_path.read_text() + keys["ed"].public_path.read_text())
        return server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(trusted), GATEWAY_VERSION=name,
                              QUOTA_EVENTS_PER_SECOND="100", QUOTA_BURST_EVENTS="1000", MAX_EVENTS_PER_REQUEST="100")

    return start


def test_fresh_instance_ids_do_not_escape_the_license_quota(quota_server, keys):
    server = quota_server("quota-fresh-ids")
    key = keys["dev"].issue(tags=("dev",))
    accepted, started = 0, time.monotonic()
    for n in range(30):
        resp = post(server, orjson.dumps(make_body(events(100), instance_id=f"fresh-{n}")), key)
        assert resp.status_code in (200, 429)
        accepted += len(resp.json().get("succeededEvents", []))
    elapsed = time.monotonic() - started
    print(f"\none license, 30 fresh instance ids x 100 events in {elapsed:.1f} s: {accepted} accepted")
    assert accepted <= 1000 + 100 * elapsed + 100  # the burst, the refill, one batch of slack


def test_another_license_cannot_drain_an_instance_s_quota(quota_server, keys):
    server = quota_server("quota-victim")
    attacker, victim = keys["ed"].issue(), keys["dev"].issue(tags=("dev",))
    statuses = [post(server, orjson.dumps(make_body(events(100), instance_id="victim")), attacker).status_code
                for _ in range(12)]
    assert statuses.count(429) >= 1  # the attacker exhausted its own bucket
    resp = post(server, orjson.dumps(make_body(events(100), instance_id="victim")), victim)
    assert resp.status_code == 200 and len(resp.json()["succeededEvents"]) == 100


def bomb(item: bytes, size: int) -> bytes:
    """A gzip'd RecordEvents body of ~size bytes once inflated: the events list filled with `item`."""
    head = orjson.dumps(make_body([]))[:-2]  # ... "events":[
    count = (size - len(head) - 8) // (len(item) + 1)
    return gzip.compress(head + b",".join([item] * count) + b"]}", 9)


def test_object_bombs_are_refused_before_they_are_parsed(server_factory, keys):
    server = server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                            GATEWAY_VERSION="bombs")
    key = keys["dev"].issue(tags=("dev",))
    pid = worker(server)
    _, before = memory_mib(pid)
    bodies = [bomb(b"{}", 5 * MIB - 1024), bomb(b"[]", 5 * MIB - 1024), bomb(b"[[[[]]]]", 5 * MIB - 1024)]

    def attack(n: int) -> tuple[int, str]:
        resp = post(server, bodies[n % len(bodies)], key, gzipped=True, timeout=60)
        return resp.status_code, resp.json()["error"]["code"]

    answers, seconds = concurrently(attack, 16)
    _, peak = memory_mib(pid)
    print(f"\n16 concurrent 5 MiB object bombs ({len(bodies[0]) // 1024} KiB gzip'd): answers {sorted(set(answers))} "
          f"in {seconds:.1f} s; worker peak RSS {before:.0f} -> {peak:.0f} MiB")
    assert set(answers) == {(413, "body_too_complex")}
    assert peak <= 400


def sample_body(encoding: str, count: int) -> tuple[bytes, str]:
    """A valid body of `count` events in the encoding, and its Content-Type."""
    if encoding == "json":
        return orjson.dumps(make_body(events(count))), JSON_TYPE
    now = datetime.now(UTC)
    return wire.encode_body(licensed("instance-1"), [base_event(now) for _ in range(count)]), wire.CONTENT_TYPE


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_a_trickled_body_gets_408_within_the_deadline(server_factory, keys, encoding):
    server = server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                            BODY_READ_TIMEOUT_SECONDS="2", GATEWAY_VERSION="trickle-one")
    body, content_type = sample_body(encoding, 2)
    status, seconds = trickle(server, keys["dev"].issue(tags=("dev",)), body, content_type)
    print(f"\n{len(body)}-byte {encoding} body trickled 1 byte / 50 ms: {status} after {seconds:.1f} s")
    assert status == 408 and seconds <= 2 + 1


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_trickling_clients_do_not_starve_a_normal_request(server_factory, keys, encoding):
    server = server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                            BODY_READ_TIMEOUT_SECONDS="2", GATEWAY_VERSION="trickle-many")
    key = keys["dev"].issue(tags=("dev",))
    trickled, content_type = sample_body(encoding, 2)
    normal, _ = sample_body(encoding, 1)

    def attack(n: int) -> tuple[int, float] | tuple[requests.Response, float]:
        if n < 20:
            return trickle(server, key, trickled, content_type)
        time.sleep(0.3)
        started = time.monotonic()
        return post(server, normal, key, content_type=content_type, accept=content_type), time.monotonic() - started

    results, _ = concurrently(attack, 21)
    resp, waited = results.pop()
    print(f"\n20 trickling {encoding} clients: a normal request answered {resp.status_code} in {waited:.2f} s; "
          f"tricklers {sorted({s for s, _ in results})}, slowest answer {max(s for _, s in results):.1f} s")
    assert resp.status_code == 200 and len(answer_of(resp)["succeededEvents"]) == 1 and waited < 3
    assert {s for s, _ in results} == {408} and max(s for _, s in results) <= 2 + 1


def test_null_tag_list_is_a_license_without_tags(dev_server, keys, subscription):
    pull = subscription(dev_server)
    key = encode_license({"v": 3, "n": [1], "t": None, "u": 5, "e": "2099-01-01T00:00:00Z"}, keys["dev"].private)
    resp = post(dev_server, orjson.dumps(make_body([make_event()])), key)
    assert resp.status_code == 200, resp.text
    (message,) = pull(expect=1)
    identity = orjson.loads(gzip.decompress(message.data))["identity"]
    assert identity["licenseTags"] == [] and identity["licenseFingerprint"] == decode_license(key).fingerprint


def test_integers_beyond_64_bits_are_refused_not_rounded(dev_server, keys, subscription):
    pull = subscription(dev_server)
    big = make_event(unknownField={"n": 2**70})  # would land in the extra column
    fine = make_event(parameters={"metadata": {"n": 2**63 - 1}})
    raw = json.dumps(make_body([fine, big])).encode()  # the standard library writes integers of any size
    resp = post(dev_server, raw, keys["dev"].issue(tags=("dev",)))
    assert resp.status_code == 200, resp.text
    assert resp.json()["succeededEvents"] == [fine["id"]]
    (failure,) = resp.json()["failedEvents"]
    assert failure["reason"] == "invalid_event" and "64 bits" in failure["message"]
    (message,) = pull(expect=1)
    assert str(2**63 - 1).encode() in gzip.decompress(message.data)
