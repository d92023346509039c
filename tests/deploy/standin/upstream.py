"""Plain HTTP calls to the emulators behind the stand-in (bounded by a timeout)."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.deploy.standin.web import Response

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "accept-encoding"}


class Upstream:
    """An emulator's REST port (host:port)."""

    def __init__(self, host: str, timeout: float = 60.0) -> None:
        self.host, self.timeout = host, timeout

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        """Forward one request; the emulator's answer as a Response."""
        conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
        try:
            sent = {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_BY_HOP}
            if body:
                sent["Content-Length"] = str(len(body))
            conn.request(method, path, body=body or None, headers=sent)
            answer = conn.getresponse()
            data = answer.read()
            return Response(answer.status, data, answer.getheader("Content-Type", "application/json"),
                            forwarded=True)
        finally:
            conn.close()

    def call(self, method: str, path: str, obj: Any = None) -> tuple[int, Any]:
        """A JSON call: (status, decoded body)."""
        body = json.dumps(obj).encode() if obj is not None else b""
        answer = self.send(method, path, body, {"Content-Type": "application/json"})
        return answer.status, json.loads(answer.body) if answer.body.strip() else {}
