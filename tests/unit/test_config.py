"""Configuration from environment variables."""

from __future__ import annotations

import pytest

from shared.config import Config
from shared.errors import ConfigError


def test_defaults():
    c = Config.from_env({"TELEMETRY_ENV": "prod"})
    assert c.pubsub_topic == "telemetry-events" and c.max_events == 1000
    assert c.max_request_bytes == 5 * 1024 * 1024 and c.bq_dataset == "telemetry"
    assert c.topic_path == "projects/telemetry-local/topics/telemetry-events"


@pytest.mark.parametrize("env", [
    {},
    {"TELEMETRY_ENV": "staging"},
    {"TELEMETRY_ENV": "prod", "ALLOW_UNLICENSED_INSTANCES": "true"},
    {"TELEMETRY_ENV": "dev", "MAX_EVENTS_PER_REQUEST": "many"},
    {"TELEMETRY_ENV": "dev", "MAX_EVENTS_PER_REQUEST": "0"},
    {"TELEMETRY_ENV": "dev", "PUBLISH_TIMEOUT_SECONDS": "-1"},
    {"TELEMETRY_ENV": "dev", "ALLOW_UNLICENSED_INSTANCES": "maybe"},
])
def test_refused(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


@pytest.mark.parametrize(("name", "value"), [("EVENT_MAX_AGE_DAYS", "2000"), ("EVENT_MAX_FUTURE_SECONDS", "40000000")])
def test_event_window_must_fit_the_sinks(name, value):
    with pytest.raises(ConfigError, match="window"):
        Config.from_env({"TELEMETRY_ENV": "dev", name: value})
