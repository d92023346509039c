"""Event quota per verified caller: a token bucket per license fingerprint, kept by each function instance.

The key is never a caller-chosen string: one license's traffic, under any instance ids, draws on one
bucket. Each function instance keeps its own buckets (no shared state), so a caller's effective rate is
the quota times the instances serving it; max-instances bounds that, and Cloud Armor can rate-limit by
IP in front of the function (docs/security.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cachetools import LRUCache

from shared.errors import TooManyRequests


class Quota:
    """Allows `rate` events/s per caller with bursts up to `burst` events (a batch is charged in full)."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_callers: int = 100_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: LRUCache[str, list[float]] = LRUCache(max_callers)
        self._lock = threading.Lock()

    def take(self, caller: str, events: int) -> None:
        """Spend tokens for every event of a batch, or raise TooManyRequests with the seconds to wait."""
        now = self._clock()
        cost = float(events)
        with self._lock:
            tokens, last = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < cost:
                self._buckets[caller] = [tokens, now]
                wait = max(1, math.ceil((cost - tokens) / self._rate))
                raise TooManyRequests(
                    "quota_exceeded", f"caller over {self._rate:g} events/s; retry in {wait}s", retry_after=wait
                )
            self._buckets[caller] = [tokens - cost, now]
