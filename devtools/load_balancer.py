"""A local stand-in for the edge deploy.sh builds: the global external Application Load Balancer with Cloud Armor.

`LoadBalancer(upstream, rules=tools.edge.policy_rules(env), address=...)` serves HTTP on 127.0.0.1 in this process
(threads, stopped by `stop()`) and, for every request:
- takes the client's address from the connection (callers bind their own 127.0.0.x source address to be many
  clients; nothing the caller writes in a header counts);
- evaluates the Cloud Armor policy's own JSON as Google documents it (devtools/armor_sim.py; `ban_counts` picks
  which reading of a ban's count to apply, both documented) and answers the acting rule's status itself when the
  policy refuses (Cloud Armor's response body is not documented: a short text here); the request never reaches
  the function then;
- otherwise forwards it with `X-Forwarded-For: <supplied-value>,<client-ip>,<load-balancer-ip>`, as the global
  external Application Load Balancer does ("X-Forwarded-For header",
  https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header: it "does not verify any IP addresses
  that precede <client-ip>,<load-balancer-ip>"), where `<load-balancer-ip>` is `address` (deploy.sh's reserved
  address, ingest's EDGE_ADDRESS). The balancer's other headers are not modelled. `address=None` appends the client's
  address only: a stand-in for the front end of a function's own URL, which Google does not document.

`clock` is when a request arrives, in seconds: time.monotonic by default (`make run`); a test passes its own to send
a traffic mix of minutes in seconds, in the order of its times, with the same verdicts on a busy machine.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from devtools.armor_sim import OVER_RATE, Armor, Request
from devtools.http_server import BackgroundServer

LOCAL_ADDRESS = "192.0.2.1"  # the local edge's "reserved address" (a documentation address): ingest's EDGE_ADDRESS
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host",
               "content-length"}


class LoadBalancer:
    """The edge in front of `upstream`: Cloud Armor's verdict first, then the request with the balancer's headers."""

    def __init__(self, upstream: str, *, rules: list[Mapping], address: str | None, ban_counts: str = OVER_RATE,
                 clock: Callable[[], float] = time.monotonic, upstream_timeout_s: float = 60.0) -> None:
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname, target.port or 80
        self.address, self.clock, self.upstream_timeout_s = address, clock, upstream_timeout_s
        self.armor = Armor(rules, ban_counts)
        self.verdicts: Counter = Counter()  # (rule priority, status Cloud Armor gave) -> requests
        self._lock = threading.Lock()
        self._upstream = threading.local()
        self._server = BackgroundServer(self._handler(), "load-balancer")
        self.port, self.url = self._server.port, self._server.url

    def start(self) -> LoadBalancer:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stop()

    def verdict(self, client_ip: str, path: str, headers: Mapping[str, str]) -> int:
        """Cloud Armor's status for this request (200: let through), counted by the rule that acted."""
        with self._lock:
            request = Request(self.clock(), client_ip, path, headers={k.lower(): v for k, v in headers.items()})
            status, priority = self.armor.decide(request)
            self.verdicts[(priority, status)] += 1
        return status

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The upstream's answer, over this thread's kept-alive connection (opened again once if it was closed)."""
        for attempt in (1, 2):
            conn = getattr(self._upstream, "conn", None)
            if conn is None:
                conn = self._upstream.conn = http.client.HTTPConnection(
                    self.upstream_host, self.upstream_port, timeout=self.upstream_timeout_s)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._upstream.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        balancer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: without it each answer waits ~40 ms

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                client_ip = self.client_address[0]
                status = balancer.verdict(client_ip, self.path, self.headers)
                if status != 200:
                    self._answer(status, [("Content-Type", "text/plain")], b"Refused by the security policy.")
                    return
                supplied = self.headers.get("X-Forwarded-For")
                forwarded = ",".join(v for v in (supplied, client_ip, balancer.address) if v)
                headers = [(k, v) for k, v in self.headers.items()
                           if k.lower() not in HOP_HEADERS and k.lower() != "x-forwarded-for"]
                headers += [("Host", self.headers.get("Host") or balancer.address),
                            ("X-Forwarded-For", forwarded)]
                try:
                    status, out_headers, out = balancer.forward(self.command, self.path, headers, body)
                except OSError:
                    status, out_headers, out = 502, [("Content-Type", "text/plain")], b"upstream unreachable"
                self._answer(status, [(k, v) for k, v in out_headers if k.lower() not in HOP_HEADERS], out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        return Handler
