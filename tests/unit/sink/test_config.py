"""The sink's settings: its own, never ingest's rules."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.sink.config import SinkConfig


def test_defaults_and_expiration_by_setting_name():
    c = SinkConfig.from_env({"TELEMETRY_ENV": "dev", "REJECTED_PARTITION_EXPIRATION_DAYS": "7"})
    assert c.bq_dataset == "telemetry" and c.dataset_ref == "telemetry-local.telemetry"
    assert c.expiration_days("EVENTS_PARTITION_EXPIRATION_DAYS") == 730
    assert c.expiration_days("REJECTED_PARTITION_EXPIRATION_DAYS") == 7


def test_ingest_rules_are_not_the_sinks():
    """A quota burst below the batch size is ingest's problem: the sink starts."""
    env = {"TELEMETRY_ENV": "dev", "QUOTA_BURST_EVENTS": "1", "MAX_EVENTS_PER_REQUEST": "1000"}
    assert SinkConfig.from_env(env).bq_dataset == "telemetry"


def test_refused():
    with pytest.raises(ConfigError, match="BQ_TIMEOUT_SECONDS must be > 0"):
        SinkConfig.from_env({"TELEMETRY_ENV": "dev", "BQ_TIMEOUT_SECONDS": "0"})
