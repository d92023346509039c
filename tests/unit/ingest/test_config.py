"""The ingest function's settings and the rules between them."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig


def test_defaults():
    c = IngestConfig.from_env({"TELEMETRY_ENV": "prod"})
    assert c.pubsub_topic == "telemetry-events" and c.max_events == 1000
    assert c.max_request_bytes == 5 * 1024 * 1024 and c.max_body_bytes == c.max_request_bytes
    assert c.topic_path == "projects/telemetry-local/topics/telemetry-events"


@pytest.mark.parametrize(("env", "message"), [
    ({"ALLOW_UNLICENSED_INSTANCES": "true", "TELEMETRY_ENV": "prod"}, "cannot be enabled in prod"),
    ({"MAX_EVENTS_PER_REQUEST": "many"}, "MAX_EVENTS_PER_REQUEST must be an integer"),
    ({"MAX_EVENTS_PER_REQUEST": "0"}, "MAX_EVENTS_PER_REQUEST must be >= 1"),
    ({"PUBLISH_TIMEOUT_SECONDS": "-1"}, "PUBLISH_TIMEOUT_SECONDS must be > 0"),
    ({"ALLOW_UNLICENSED_INSTANCES": "maybe"}, "ALLOW_UNLICENSED_INSTANCES must be true or false"),
    ({"MAX_REQUEST_BYTES": str(20 * 1024 * 1024)}, "MAX_REQUEST_BYTES must be <= .*Pub/Sub message"),
    ({"PUBSUB_GZIP_LEVEL": "9"}, "PUBSUB_GZIP_LEVEL must be <= 3: an ISA-L level"),
    ({"QUOTA_BURST_EVENTS": "999", "MAX_EVENTS_PER_REQUEST": "1000"}, "QUOTA_BURST_EVENTS must be >="),
])
def test_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        IngestConfig.from_env({"TELEMETRY_ENV": "dev", **env})


@pytest.mark.parametrize(("name", "value"), [("EVENT_MAX_AGE_DAYS", "2000"), ("EVENT_MAX_FUTURE_SECONDS", "40000000")])
def test_event_window_must_fit_the_sinks(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be <= .*BigQuery's window"):
        IngestConfig.from_env({"TELEMETRY_ENV": "dev", name: value})
