"""A quiet threading HTTP server on 127.0.0.1, served from a background thread of this process (devtools' stand-ins
for Google's front ends: devtools.front, devtools.load_balancer)."""

from __future__ import annotations

import http.server
import threading


class _Server(http.server.ThreadingHTTPServer):
    """Quiet about clients that drop a kept-alive connection (the emulator's pusher does)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return


class BackgroundServer:
    """Serve `handler` on a free port of 127.0.0.1 until stop()."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], name: str) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._server.server_port

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (requests in flight finish on their own threads)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
