"""RecordEvents on its own: a Flask request in, an Outcome out, batches published to the emulator."""

from __future__ import annotations

import gzip

import orjson
import pytest
from werkzeug.test import EnvironBuilder

from shared.errors import TooManyRequests, Unauthorized
from shared.ingest.config import IngestConfig
from shared.ingest.licenses.keys import decode_license
from shared.ingest.licenses.verifier import LicenseVerifier
from shared.ingest.publisher import Publisher
from shared.ingest.quota import Quota
from shared.ingest.record import RecordEvents
from tests.conftest import PROJECT
from tests.helpers import make_body, make_event


@pytest.fixture
def record(pubsub_emulator, keys, topic, monkeypatch) -> RecordEvents:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    config = IngestConfig.from_env({"TELEMETRY_ENV": "dev", "TRUSTED_LICENSE_KEYS_FILE": str(keys["dev"].public_path),
                              "GOOGLE_CLOUD_PROJECT": PROJECT, "PUBSUB_TOPIC": topic})
    publisher = Publisher(config.topic_path, config.publish_timeout_s, config.retry_after_s)
    quota = Quota(0.01, 10)  # 10 events, then almost no refill
    return RecordEvents(config, LicenseVerifier.from_config(config), publisher, quota)


def request(body: object, license_key: str | None, gzipped: bool = False):
    data = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if gzipped:
        data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
    if license_key:
        headers["Authorization"] = f"Bearer {license_key}"
    return EnvironBuilder(method="POST", path="/v1/events", data=data, headers=headers).get_request()


def test_outcome_and_published_batch(record, keys, pull):
    lic = keys["dev"].issue(tags=("dev", "plan:x"))
    events = [make_event(), make_event(), make_event(timestamp="2001-01-01T00:00:00Z")]
    outcome = record.handle(request(make_body(events, "inst-9", "req-9"), lic, gzipped=True))
    assert outcome.body["succeededEvents"] == [events[0]["id"], events[1]["id"]]
    assert outcome.body["failedEvents"][0]["reason"] == "timestamp_too_old"
    assert outcome.log["accepted"] == 2 and outcome.log["failedByReason"] == {"timestamp_too_old": 1}
    (message,) = pull()
    assert outcome.log["messageId"] == message.message_id
    doc = orjson.loads(gzip.decompress(message.data))
    assert doc["requestId"] == "req-9" and doc["identity"]["licenseTags"] == ["dev", "plan:x"]
    assert doc["identity"]["licenseFingerprint"] == decode_license(lic).fingerprint


def test_nothing_published_when_every_event_is_refused(record, keys, pull):
    outcome = record.handle(request(make_body([make_event(id="")]), keys["dev"].issue(tags=("dev",))))
    assert outcome.body["succeededEvents"] == [] and "messageId" not in outcome.log
    assert pull() == []


def test_a_header_license_is_checked_before_the_body_is_read(record):
    req = request(make_body([make_event()]), "not-a-license")
    with pytest.raises(Unauthorized):
        record.handle(req)
    assert req.stream.read() != b""  # the body was never consumed


def test_without_a_header_the_body_is_read_for_its_license_then_refused(record):
    """The key may travel in metadata.identifier.licensedInstance.licenseKey (issue 22): without a header the
    body is read within its limits; without a key in it either, 401 missing_license."""
    req = request(make_body([make_event()]), None)
    with pytest.raises(Unauthorized) as exc:
        record.handle(req)
    assert exc.value.code == "missing_license" and req.stream.read() == b""


def test_quota_charged_per_batch(record, keys):
    lic = keys["dev"].issue(tags=("dev",))
    record.handle(request(make_body([make_event() for _ in range(10)]), lic))
    with pytest.raises(TooManyRequests):
        record.handle(request(make_body([make_event()]), lic))
