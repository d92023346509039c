"""Hostile requests, shared by the JSON and protobuf tests: what every answer to one must look like, the
requests themselves (random headers, trickled bodies, many at once) and the ingest worker's memory."""

from __future__ import annotations

import contextlib
import gzip
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import requests
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from hypothesis import strategies as st

from devtools.procs import Service, wait_for_workers
from shared.envelope import is_requests
from shared.gateway_pb2 import RecordEventsAnswer
from shared.ingest.batch import WARNINGS
from tools import wire

MIB = 1024 * 1024
JSON_TYPE = "application/json"
ENCODINGS = st.sampled_from(["gzip", "identity", "br", "GZIP"])
AUTHORIZATIONS = st.sampled_from(["Bearer x", "Basic y", "Bearer ", "bearer abc.def"])


def json_like(leaves: st.SearchStrategy) -> st.SearchStrategy:
    """JSON-like values (lists and string-keyed objects, up to 20 leaves) of the given leaves."""
    return st.recursive(leaves, lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=10), children, max_size=4), max_leaves=20)


def check_answer(status: int, content_type: str, content: bytes, accepted_batches: list[int],
                 protobuf: bool = False) -> None:
    """Never a 5xx; JSON, or protobuf when asked for; errors in the error shape; batches that published
    counted in accepted_batches."""
    assert status < 500, content[:500]
    if protobuf:
        assert content_type.startswith(wire.CONTENT_TYPE), (content_type, content[:500])
        succeeded = _check_protobuf(status, content)
    else:
        assert content_type.startswith(JSON_TYPE), (content_type, content[:500])
        succeeded = _check_json(status, orjson.loads(content))
    if succeeded:
        accepted_batches.append(succeeded)


def _check_json(status: int, doc: dict) -> int:
    if status >= 400:
        assert set(doc) == {"error"} and doc["error"]["code"] and doc["error"]["message"], doc
        return 0
    assert set(doc) == {"succeededEvents", "failedEvents", "warnings"}, doc
    assert all(f["reason"] and f["message"] for f in doc["failedEvents"]), doc
    succeeded = set(doc["succeededEvents"])
    assert all(w["code"] in WARNINGS and w["message"] and w["id"] in succeeded for w in doc["warnings"]), doc
    return len(doc["succeededEvents"])


def _check_protobuf(status: int, content: bytes) -> int:
    if status >= 400:
        try:
            error = status_pb2.Status.FromString(content)
        except DecodeError:
            raise AssertionError(f"{status} without a google.rpc.Status body: {content[:500]!r}") from None
        assert error.code and error.message and wire.error_reason(content), error
        return 0
    answer = RecordEventsAnswer.FromString(content)
    assert all(f.reason and f.message for f in answer.failed_events), answer
    succeeded = set(answer.succeeded_events)
    assert all(w.code in WARNINGS and w.message and w.id in succeeded for w in answer.warnings), answer
    return len(answer.succeeded_events)


def request_parts(body: bytes, hdrs: dict, gzip_it: bool, license_key: str | None) -> tuple[bytes, dict]:
    """The body (gzip'd when asked and the headers say gzip) and headers (a good license when given)."""
    hdrs = dict(hdrs)
    if license_key:
        hdrs["Authorization"] = f"Bearer {license_key}"
    data = gzip.compress(body) if gzip_it and hdrs.get("Content-Encoding", "").lower() == "gzip" else body
    return data, hdrs


def drain(subscriber: object, subscription: str) -> list[int]:
    """Pull and acknowledge everything on a subscription (every message already published): each events batch's
    eventCount (request-log messages are left out)."""
    published: list[int] = []
    while True:
        resp = subscriber.pull(subscription=subscription, max_messages=1000, timeout=3)
        if not resp.received_messages:
            return published
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in resp.received_messages])
        published += [int(m.message.attributes["eventCount"]) for m in resp.received_messages
                      if not is_requests(m.message.attributes)]


def post(server: Service, body: bytes, key: str, gzipped: bool = False, timeout: float = 30,
         content_type: str = JSON_TYPE, accept: str | None = None) -> requests.Response:
    """POST /v1/events with a license in the header."""
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {key}",
               **({"Content-Encoding": "gzip"} if gzipped else {}), **({"Accept": accept} if accept else {})}
    return requests.post(f"{server.url}/v1/events", data=body, headers=headers, timeout=timeout)


def concurrently(attack: Callable[[int], object], count: int) -> tuple[list, float]:
    """attack(0) .. attack(count - 1) at once, each in a thread: their results in order, and the seconds taken."""
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(attack, range(count)))
    return results, time.monotonic() - started


def worker(server: Service) -> int:
    """The pid of the server's one gunicorn worker (once it has forked it)."""
    (pid,) = wait_for_workers(server.proc.pid, 1)
    return pid


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MiB of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def trickle(server: Service, key: str, body: bytes, content_type: str = JSON_TYPE,
            every_s: float = 0.05) -> tuple[int, float]:
    """Send headers, then the body one byte at a time; return (status, seconds until the answer)."""
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for byte in body:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
            if answer:
                break
            time.sleep(every_s)
        sock.settimeout(30)
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split()[1]) if answer else 0, time.monotonic() - started


def answer_of(resp: requests.Response) -> dict:
    """A 2xx answer as the JSON answer's dict, whichever encoding it came in."""
    if resp.headers["Content-Type"].startswith(wire.CONTENT_TYPE):
        return wire.decode_answer(resp.content)
    return resp.json()
