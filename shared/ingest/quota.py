"""Per-instance event quota: a token bucket per instance id, kept by each function instance."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cachetools import LRUCache

from shared.errors import TooManyRequests


class Quota:
    """Allows `rate` events/s per instance with bursts up to `burst` events."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_instances: int = 100_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: LRUCache[str, list[float]] = LRUCache(max_instances)
        self._lock = threading.Lock()

    def take(self, instance_id: str, events: int) -> None:
        """Spend tokens for a batch, or raise TooManyRequests with the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(instance_id, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            cost = min(float(events), self._burst)
            if tokens < cost:
                self._buckets[instance_id] = [tokens, now]
                wait = math.ceil((cost - tokens) / self._rate)
                raise TooManyRequests(
                    "quota_exceeded", f"instance over {self._rate:g} events/s; retry in {wait}s", retry_after=wait
                )
            self._buckets[instance_id] = [tokens - cost, now]
