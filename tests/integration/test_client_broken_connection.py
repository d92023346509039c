"""The client re-sends a batch whose connection broke, before or in the middle of the answer (a worker
killed mid-request), or that the load balancer throttled, on a real socket: the exceptions are the ones requests
really raises, and the throttle answers as Cloud Armor's does (a 429 with no JSON body and no Retry-After)."""

from __future__ import annotations

import gzip
import random
import socket
import struct
import threading

import orjson
import pytest

from tests.helpers import cli
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


# What a Cloud Armor throttle answers: the load balancer's own short HTML page, not the gateway's JSON, and no
# Retry-After (the rule's exceed action is deny(429); docs/security.md "Limits at the edge").
THROTTLED_PAGE = b"<!doctype html><title>429</title>Too Many Requests"
THROTTLED = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(THROTTLED_PAGE), THROTTLED_PAGE))


def serve(*modes: str) -> tuple[str, list[list]]:
    """A server answering the n-th connection by modes[n]: 'reset' (RST, no answer), 'truncated' (200 whose body
    stops half-way), 'throttled' (Cloud Armor's 429), 'ok' (a full 200 listing every event as succeeded). Returns
    its URL and the batches got."""
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
                    if mode == "throttled":
                        conn.sendall(THROTTLED)
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


def test_the_cli_backs_off_and_resends_what_cloud_armor_throttled():
    """`python -m tools.client send` through the edge: a throttled batch is re-sent after a backoff, as for the
    gateway's own 429, although the answer has no JSON body to read and no Retry-After to honour."""
    url, batches = serve("throttled", "throttled", "ok")
    events = b"".join(orjson.dumps(e) + b"\n" for e in EVENTS)
    sent = cli("send", "-", "--url", url, "--instance-id", "edge-test", "--max-time", "30", stdin=events,
               license_key="KEY")
    assert sent.returncode == 0, sent.stderr.decode()[-2000:]
    assert batches == [EVENTS, EVENTS, EVENTS]
    assert ("sent 3 events in 3 requests (2 retried): 3 succeeded (warnings: none), refused: none, gave up on 0"
            in sent.stdout.decode())
