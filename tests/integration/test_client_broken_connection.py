"""The client re-sends a batch whose connection broke, before or in the middle of the answer (a worker
killed mid-request), on a real socket: the exceptions are the ones requests really raises."""

from __future__ import annotations

import gzip
import random
import socket
import struct
import threading

import orjson
import pytest

from tools.client import Sender

pytestmark = pytest.mark.integration

EVENTS = [{"id": f"e{i}"} for i in range(3)]


def _read_request(conn: socket.socket) -> bytes:
    """One whole HTTP request (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return body


def serve(*modes: str) -> tuple[str, list[list]]:
    """A server answering the n-th connection by modes[n]: 'reset' (RST, no answer), 'truncated' (200 whose body
    stops half-way), 'ok' (a full 200 listing every event as succeeded). Returns its URL and the batches got."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    batches: list[list] = []

    def run() -> None:
        with listener:
            for mode in modes:
                conn, _ = listener.accept()
                with conn:
                    batch = orjson.loads(gzip.decompress(_read_request(conn)))["events"]
                    batches.append(batch)
                    if mode == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        continue
                    body = orjson.dumps({"succeededEvents": [e["id"] for e in batch], "failedEvents": []})
                    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n").encode()
                    if mode == "truncated":  # the Content-Length promises the whole body; half of it comes
                        body = body[: len(body) // 2]
                    conn.sendall(head + body)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", batches


def send(url: str):
    sleeps: list[float] = []
    sender = Sender(url, "KEY", "inst", timeout_s=5, max_time_s=60, sleep=sleeps.append, rng=random.Random(1))
    return sender.send(list(EVENTS)), sleeps


def test_connection_reset_before_the_answer_is_retried():
    url, batches = serve("reset", "ok")
    report, sleeps = send(url)
    assert (report.succeeded, report.retries, report.requests, report.gave_up) == (3, 1, 2, 0)
    assert batches[0] == batches[1] == EVENTS and len(sleeps) == 1


def test_connection_broken_mid_answer_is_retried():
    url, batches = serve("truncated", "ok")
    report, _ = send(url)
    assert (report.succeeded, report.retries, report.requests, report.gave_up) == (3, 1, 2, 0)
    assert batches[0] == batches[1] == EVENTS
