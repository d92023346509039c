"""The request log on the Pub/Sub emulator: rows published apart from the events, refused requests bounded."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from devtools.procs import free_port
from shared.envelope import decode_requests, is_requests
from shared.ingest.config import IngestConfig
from shared.ingest.publisher import Publisher
from shared.ingest.requestlog import EVERYONE, RequestFacts, RequestLog, outcome
from tests.conftest import PROJECT

WINDOW_S = 1.0


MADE: list[RequestLog] = []


@pytest.fixture(autouse=True)
def stopped_after_the_test() -> Iterator[None]:
    """Every log a test makes has its publishing thread stopped at the end (one retrying a dead Pub/Sub ran on
    through the rest of the session, and a thread count in tests/unit/ingest/test_watchdog.py saw its threads)."""
    yield
    while MADE:
        MADE.pop().stop()


def request_log(topic: str, emulator_host: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> RequestLog:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator_host)
    config = IngestConfig.from_env({"TELEMETRY_ENV": "dev", "GOOGLE_CLOUD_PROJECT": PROJECT, "PUBSUB_TOPIC": topic,
                                    "REQUEST_LOG_WINDOW_SECONDS": str(WINDOW_S), "REQUEST_LOG_FLUSH_SECONDS": "0.2",
                                    "PUBLISH_TIMEOUT_SECONDS": "2", **env})
    log = RequestLog(config, Publisher(config.topic_path, config.publish_timeout_s, config.retry_after_s))
    MADE.append(log)
    return log


def rows_of(messages: list) -> list[dict]:
    assert all(is_requests(m.attributes) for m in messages)
    return [row for m in messages for row in decode_requests(m.data, dict(m.attributes))]


def refuse(log: RequestLog, fingerprint: str | None, ip: str = "203.0.113.7", code: str = "invalid_license") -> None:
    log.record(RequestFacts(license_fingerprint=fingerprint), 401, code, time.time_ns() // 1000, 0.1, "ua", ip)


def a_later_request(log: RequestLog, after_s: float = 0.25) -> None:
    """What the next request does at its end, after_s later (REQUEST_LOG_FLUSH_SECONDS is 0.2 here)."""
    time.sleep(after_s)
    log.flush_due()


def pull_rows(pull, expected: int, timeout_s: float = 15) -> list[dict]:
    rows: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(rows) < expected and time.monotonic() < deadline:
        rows += rows_of(pull(requests=True))
    return rows


def test_an_accepted_request_s_row_holds_its_counts_and_no_content(pubsub_emulator, topic, pull, monkeypatch):
    log = request_log(topic, pubsub_emulator.host, monkeypatch)
    facts = RequestFacts(format="json", content_encoding="gzip", wire_bytes=300, body_bytes=900, request_id="r-1",
                         caller_kind="licensed_instance", instance_id="inst-1", license_fingerprint="fp-1", events=3,
                         accepted=2, refused=Counter(invalid_event=1), warnings=Counter(timestamp_truncated=1),
                         earliest=1_000_000, latest=2_000_000)
    log.record(facts, 200, None, 5_000_000, 1.25, "sourcegraph/5.11", "203.0.113.7")
    log.flush_due()  # its own request's end: not due yet (REQUEST_LOG_FLUSH_SECONDS)
    assert len(log._rows) == 1
    a_later_request(log)  # the next request, once the row is due, publishes it
    [row] = pull_rows(pull, 1)
    assert {k: v for k, v in row.items() if k != "record_id"} == {
        "received_at": 5_000_000, "request_id": "r-1", "environment": "dev", "caller_kind": "licensed_instance",
        "instance_id": "inst-1", "license_fingerprint": "fp-1", "status": 200, "error_code": None,
        "outcome": "partial", "events": 3, "accepted": 2, "refused": {"invalid_event": 1}, "redacted": None,
        "warnings": {"timestamp_truncated": 1}, "wire_bytes": 300, "body_bytes": 900, "format": "json",
        "content_encoding": "gzip", "handling_ms": 1.25, "earliest_event": 1_000_000, "latest_event": 2_000_000,
        "user_agent": "sourcegraph/5.11"}
    assert len(row["record_id"]) == 32


@pytest.mark.parametrize(("status", "refused", "accepted", "expected"), [
    (200, {}, 3, "accepted"), (200, {"invalid_event": 1}, 2, "partial"), (200, {"invalid_event": 3}, 0, "rejected"),
    (413, {}, None, "refused"), (503, {}, None, "failed")])
def test_outcome(status, refused, accepted, expected):
    assert outcome(status, RequestFacts(accepted=accepted, refused=Counter(refused))) == expected


def test_refused_requests_are_bounded_per_client_and_counted_in_one_row(pubsub_emulator, topic, pull, monkeypatch):
    log = request_log(topic, pubsub_emulator.host, monkeypatch, REQUEST_LOG_REFUSED_PER_CLIENT="3",
                      REQUEST_LOG_REFUSED_PER_INSTANCE="8")
    for _ in range(50):
        refuse(log, "fp-flood")           # one client: 3 rows, 47 counted
    for n in range(20):
        refuse(log, None, f"198.51.100.{n}")  # twenty clients by IP: 5 rows (the instance's bound), 15 counted
    a_later_request(log, WINDOW_S + 0.5)  # the window ends: its suppressed rows are written
    rows = pull_rows(pull, 3 + 5 + 2)
    one_by_one = [r for r in rows if r["outcome"] == "refused"]
    suppressed = {r.get("license_fingerprint") or EVERYONE: r for r in rows if r["outcome"] == "suppressed"}
    assert Counter(r["license_fingerprint"] for r in one_by_one) == {"fp-flood": 3, None: 5}
    assert {k: (r["suppressed"], r["suppressed_by_code"]) for k, r in suppressed.items()} == {
        "fp-flood": (47, {"invalid_license": 47}), EVERYONE: (15, {"invalid_license": 15})}
    assert len(rows) == 10  # nothing else


def test_a_new_window_records_again(pubsub_emulator, topic, pull, monkeypatch):
    log = request_log(topic, pubsub_emulator.host, monkeypatch, REQUEST_LOG_REFUSED_PER_CLIENT="1")
    refuse(log, "fp-a")
    refuse(log, "fp-a")
    time.sleep(WINDOW_S + 0.5)
    refuse(log, "fp-a")
    a_later_request(log)
    rows = pull_rows(pull, 3)
    assert Counter(r["outcome"] for r in rows) == {"refused": 2, "suppressed": 1}


def test_pubsub_unreachable_never_raises_and_the_rows_wait(monkeypatch, topic):
    log = request_log(topic, f"127.0.0.1:{free_port()}", monkeypatch, PUBLISH_TIMEOUT_SECONDS="0.5")
    started = time.monotonic()
    log.record(RequestFacts(), 400, "invalid_json", 1, 0.1, None, "203.0.113.7")
    assert time.monotonic() - started < 0.1  # recording never waits for Pub/Sub
    a_later_request(log)  # a later request's flush: the publish fails, the row is kept
    assert len(log._rows) == 1


def test_disabled_records_nothing(pubsub_emulator, topic, pull, monkeypatch, capsys):
    """REQUEST_LOG=false: accepted and refused requests leave no row, nothing waits, nothing is published, and no
    publish is attempted (so no failure is logged either)."""
    log = request_log(topic, pubsub_emulator.host, monkeypatch, REQUEST_LOG="false")
    for _ in range(3):
        refuse(log, "fp")
    log.record(RequestFacts(), 200, None, 1, 0.1, None, "203.0.113.7")
    a_later_request(log, WINDOW_S + 0.5)  # past the flush delay and the window: anything waiting would be due
    log.flush()
    assert log._rows == [] and pull_rows(pull, 1, timeout_s=3) == []
    assert "request_log_failed" not in capsys.readouterr().out


def test_every_field_of_a_row_is_a_column_of_the_requests_table(pubsub_emulator, topic, pull, monkeypatch):
    from shared.sink.warehouse.tables import REQUESTS

    log = request_log(topic, pubsub_emulator.host, monkeypatch, REQUEST_LOG_REFUSED_PER_CLIENT="0")
    refuse(log, "fp")
    log.record(RequestFacts(), 200, None, 1, 0.1, None, None)
    a_later_request(log, WINDOW_S + 0.5)
    rows = pull_rows(pull, 2)
    assert {r["outcome"] for r in rows} == {"accepted", "suppressed"}
    assert set().union(*rows) <= {c.name for c in REQUESTS.columns}


def test_the_exit_flush_publishes_what_waits_without_starting_a_thread(pubsub_emulator, topic, pull, monkeypatch):
    """At exit nothing else runs, and Python 3.12+ refuses to start a thread inside an atexit function (RuntimeError):
    the flush publishes from the exiting thread alone (simulated here: every Thread.start raises meanwhile)."""
    import threading

    log = request_log(topic, pubsub_emulator.host, monkeypatch)
    log.publisher.client  # noqa: B018 - created at the first request, as in a serving instance
    refuse(log, "fp-exit")

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refused)
    log._flush_at_exit()
    monkeypatch.undo()
    assert [r["license_fingerprint"] for r in pull_rows(pull, 1)] == ["fp-exit"]
