"""Per-instance token bucket."""

from __future__ import annotations

import pytest

from shared.errors import TooManyRequests
from shared.ingest.quota import Quota


def test_bucket_refills_per_instance():
    now = [0.0]
    q = Quota(rate=100, burst=1000, clock=lambda: now[0])
    q.take("a", 1000)
    with pytest.raises(TooManyRequests) as exc:
        q.take("a", 500)
    assert exc.value.retry_after == 5
    q.take("b", 1000)
    now[0] += 5
    q.take("a", 500)


def test_batch_larger_than_burst_passes_when_full():
    q = Quota(rate=1, burst=10, clock=lambda: 0.0)
    q.take("a", 50)
    with pytest.raises(TooManyRequests):
        q.take("a", 1)
