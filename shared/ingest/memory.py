"""Bounded memory per request: what a body may cost once parsed, and a process-wide budget for it.

JSON expands when parsed: `{},` is 3 bytes on the wire and about 70 once it is a dict in a list, so a
body within the byte limits can still take hundreds of MiB. Before a body is parsed, its containers
and values are counted on the raw bytes (a few memchr passes) and their cost in Python objects is
reserved from a budget the whole process shares; a body that can never fit is refused (413), one that
cannot fit now waits briefly, then is answered 503 with Retry-After.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from shared.errors import PayloadTooLarge, Unavailable

CONTAINER_BYTES = 72  # an empty dict in CPython, plus its slot in the enclosing list or dict
VALUE_BYTES = 64  # a slot and a small object (a short str is ~50 bytes) per comma-separated value
CONTAINERS_PER_EVENT = 64  # generous: a realistic event has about ten objects
WAIT_S = 2.0


def parsed_cost(raw: bytes) -> tuple[int, int]:
    """(containers, estimated bytes once parsed) of a JSON text, from its bytes alone (an upper bound)."""
    containers = raw.count(b"{") + raw.count(b"[")
    return containers, len(raw) + containers * CONTAINER_BYTES + raw.count(b",") * VALUE_BYTES


class ParseBudget:
    """Bytes of parsed request bodies the process holds at once."""

    def __init__(self, capacity: int, retry_after_s: int, wait_s: float = WAIT_S) -> None:
        self.capacity = capacity
        self._retry_after = retry_after_s
        self._wait = wait_s
        self._used = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes reserved right now."""
        return self._used

    def reserve(self, raw: bytes, max_events: int) -> contextlib.AbstractContextManager[int]:
        """Hold the parsed cost of a JSON body for the block; 413 if it could never fit, 503 if not now."""
        containers, cost = parsed_cost(raw)
        limit = max_events * CONTAINERS_PER_EVENT + 16
        if containers > limit:
            raise PayloadTooLarge("body_too_complex", f"{containers} JSON objects/arrays; at most {limit} "
                                  f"for {max_events} events")
        return self.hold(cost)

    @contextlib.contextmanager
    def hold(self, cost: int) -> Iterator[int]:
        """Hold `cost` bytes of the budget for the block; 413 if it could never fit, 503 if not now."""
        if cost > self.capacity:
            raise PayloadTooLarge("body_too_complex", f"body would take ~{cost >> 20} MiB once parsed; "
                                  f"at most {self.capacity >> 20} MiB")
        deadline = time.monotonic() + self._wait
        with self._cond:
            while self._used + cost > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable("server_busy", "too many large requests at once; retry later",
                                      retry_after=self._retry_after)
                self._cond.wait(left)
            self._used += cost
        try:
            yield cost
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()
