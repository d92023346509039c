"""The token bucket per verified caller."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError, TooManyRequests
from shared.ingest.config import IngestConfig
from shared.ingest.quota import Quota


def test_bucket_refills_per_caller():
    now = [0.0]
    q = Quota(rate=100, burst=1000, clock=lambda: now[0])
    q.take("license:a", 1000)
    with pytest.raises(TooManyRequests) as exc:
        q.take("license:a", 500)
    assert exc.value.retry_after == 5
    q.take("license:b", 1000)  # another caller's bucket is untouched
    now[0] += 5
    q.take("license:a", 500)


def test_a_batch_is_charged_for_every_event():
    now = [0.0]
    q = Quota(rate=10, burst=100, clock=lambda: now[0])
    q.take("c", 60)
    with pytest.raises(TooManyRequests) as exc:
        q.take("c", 60)  # 40 tokens left: the whole batch counts, not min(events, burst)
    assert exc.value.retry_after == 2
    now[0] += 2
    q.take("c", 60)


def test_a_full_batch_must_fit_the_bucket():
    with pytest.raises(ConfigError, match="QUOTA_BURST_EVENTS"):
        IngestConfig.from_env({"TELEMETRY_ENV": "dev", "QUOTA_BURST_EVENTS": "999", "MAX_EVENTS_PER_REQUEST": "1000"})
