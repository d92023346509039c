"""Body deadlines that hold even when bytes trickle in one at a time.

A WSGI read blocks inside the server until the bytes it asked for arrive, so a deadline checked between
reads never fires on a body trickled a byte at a time. One watchdog thread per process instead shuts
the read side of an overdue request's socket: the blocked read returns at once with what has arrived,
and the request is answered 408 (the write side stays open for the answer).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator

TICK_S = 0.05  # how late past its deadline a trickled body may be cut


class Watchdog:
    """Shuts `SHUT_RD` on sockets whose deadline passes while they are still being read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[list] = []  # [deadline, seq, socket, active]
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.fired = 0

    @contextlib.contextmanager
    def guard(self, sock: socket.socket | None, deadline: float) -> Iterator[None]:
        """Watch sock until the block exits; past deadline its read side is shut."""
        if sock is None:
            yield
            return
        entry: list = [deadline, next(self._seq), sock, True]
        with self._lock:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="body-deadline-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:  # never cleared while the watchdog is deciding: a later request is never cut
                entry[3] = False

    def _run(self) -> None:
        """Every TICK_S, shut the overdue sockets still being read (at most 1/TICK_S wake-ups a second,
        whatever the request rate: no wake-up, and no lock hand-off, per request)."""
        while True:
            time.sleep(TICK_S)
            now = self._clock()
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    entry = heapq.heappop(self._heap)
                    if entry[3]:  # still being read (decided and acted on under the lock)
                        with contextlib.suppress(OSError):
                            entry[2].shutdown(socket.SHUT_RD)
                            self.fired += 1


WATCHDOG = Watchdog()  # one per process, its thread started on first use
