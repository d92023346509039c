"""A local stand-in for Cloud Run's front at max instances: N requests at once, a short queue, then 429.

Cloud Run sends a service at most `max instances x concurrency` requests at once; beyond that, requests
wait for a free instance and, if none frees in time, fail with 429 ("Exceeding maximum instances":
https://cloud.google.com/run/docs/about-instance-autoscaling ; concurrency:
https://cloud.google.com/run/docs/about-concurrency ; max instances:
https://cloud.google.com/run/docs/configuring/max-instances-limits). Pub/Sub counts that 429 as a failed
delivery toward the dead-letter threshold like any non-2xx answer.

`Front(upstream, slots=N, queue=Q, queue_timeout_s=T)` runs in this process (threads, stopped by
`stop()`): a request takes one of N slots and is forwarded to the upstream sink; when all are taken it
waits for one (at most Q waiting, each at most T seconds); otherwise it is answered 429 without reaching
the sink. It counts what it did (`stats()`).

`freeze=service.signal` runs the upstream as request-based billing does: "when the Cloud Run service finishes
handling a request, the instance's access to CPU will be disabled or severely limited" (Cloud Run tips,
https://cloud.google.com/run/docs/tips/general): its process group is stopped (SIGSTOP) whenever no request is in
flight and resumed (SIGCONT) before the next one is forwarded, so nothing of it runs between requests.
"""

from __future__ import annotations

import http.client
import http.server
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from devtools.http_server import BackgroundServer

REFUSAL = b"Rate exceeded. The request was aborted because there was no available instance."
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class FrontStats:
    """What the front did so far."""

    forwarded: int = 0  # requests that reached the sink
    queued: int = 0  # of those, how many waited for a slot first
    refused: int = 0  # answered 429 (queue full, or no slot within the queue timeout)
    upstream_errors: int = 0  # the sink could not be reached (answered 502)
    peak_in_flight: int = 0
    statuses: dict = field(default_factory=dict)  # the sink's answers by status


class Front:
    """Admit at most `slots` concurrent requests to `upstream`, queue up to `queue` for `queue_timeout_s`."""

    def __init__(self, upstream: str, *, slots: int, queue: int = 0, queue_timeout_s: float = 0.0,
                 upstream_timeout_s: float = 120.0, freeze: Callable[[int], None] | None = None) -> None:
        if slots < 1 or queue < 0 or queue_timeout_s < 0:
            raise ValueError("slots >= 1, queue >= 0, queue_timeout_s >= 0")
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname, target.port or 80
        self.slots, self.queue, self.queue_timeout_s = slots, queue, queue_timeout_s
        self.upstream_timeout_s = upstream_timeout_s
        self.freeze = freeze
        self._cond = threading.Condition()
        self._in_flight = 0
        self._waiting = 0
        self._stats = FrontStats()
        self._server = BackgroundServer(self._handler(), "front")

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT."""
        return self._server.url

    def start(self) -> Front:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (requests in flight finish on their own threads)."""
        self._server.stop()

    def stats(self) -> FrontStats:
        """A copy of the counters."""
        with self._cond:
            s = self._stats
            return FrontStats(s.forwarded, s.queued, s.refused, s.upstream_errors, s.peak_in_flight,
                              dict(s.statuses))

    def _admit(self) -> bool:
        """Take a slot now, or wait in the queue for one; False means answer 429."""
        with self._cond:
            if self._in_flight < self.slots:
                self._take()
                return True
            if self._waiting >= self.queue:
                self._stats.refused += 1
                return False
            self._waiting += 1
            deadline = time.monotonic() + self.queue_timeout_s
            try:
                while self._in_flight >= self.slots:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._stats.refused += 1
                        return False
                    self._cond.wait(left)
                self._stats.queued += 1
                self._take()
                return True
            finally:
                self._waiting -= 1

    def _take(self) -> None:  # called with the condition held
        if self._in_flight == 0 and self.freeze:
            self.freeze(signal.SIGCONT)
        self._in_flight += 1
        self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._in_flight)

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            if self._in_flight == 0 and self.freeze:
                self.freeze(signal.SIGSTOP)
            self._cond.notify()

    def thaw(self) -> None:
        """Resume the upstream for good (before stopping it: its shutdown runs with CPU, as Cloud Run's 10 s do)."""
        with self._cond:
            self.freeze, freeze = None, self.freeze
        if freeze:
            freeze(signal.SIGCONT)

    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout_s)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not front._admit():
                    self._answer(429, [("Content-Type", "text/plain")], REFUSAL)
                    return
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    status, out_headers, out = front._forward("POST", self.path, headers, body)
                except OSError:
                    with front._cond:
                        front._stats.upstream_errors += 1
                    status, out_headers, out = 502, [("Content-Type", "text/plain")], b"upstream unreachable"
                else:
                    with front._cond:
                        front._stats.forwarded += 1
                        front._stats.statuses[status] = front._stats.statuses.get(status, 0) + 1
                finally:
                    front._release()
                self._answer(status, [(k, v) for k, v in out_headers if k.lower() not in HOP_HEADERS], out)

            def _answer(self, status: int, headers: list, body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        return Handler
