"""The client's retry rules, with scripted answers for outcomes the real gateway cannot be made to give."""

from __future__ import annotations

import gzip
import random

import orjson
import requests

from tools.client import Sender


class Answer:
    def __init__(self, status: int, body: dict | None = None, retry_after: str | None = None) -> None:
        self.status_code = status
        self._body = body or {}
        self.headers = {"Retry-After": retry_after} if retry_after else {}

    def json(self) -> dict:
        return self._body


class ScriptedSession:
    """Answers each POST with the next scripted function of the batch; records what was sent."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.batches: list[list] = []

    def post(self, url, data, headers, timeout):
        batch = orjson.loads(gzip.decompress(data))["events"]
        self.batches.append(batch)
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(batch)


def ok(retryable_indexes=(), refused_indexes=()):
    def answer(batch):
        failed = [{"index": i, "id": batch[i]["id"], "reason": "transient_thing", "retryable": True}
                  for i in retryable_indexes]
        failed += [{"index": i, "id": batch[i]["id"], "reason": "invalid_event", "retryable": False}
                   for i in refused_indexes]
        bad = set(retryable_indexes) | set(refused_indexes)
        return Answer(200, {"succeededEvents": [e["id"] for i, e in enumerate(batch) if i not in bad],
                            "failedEvents": failed})
    return answer


def sender(session, **kwargs) -> tuple[Sender, list]:
    sleeps: list[float] = []
    now = [0.0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    s = Sender("http://gw", "KEY", "inst", session=session, sleep=sleep, clock=lambda: now[0],
               rng=random.Random(1), **kwargs)
    return s, sleeps


EVENTS = [{"id": f"e{i}"} for i in range(5)]


def test_only_retryable_events_are_resent():
    session = ScriptedSession(ok(retryable_indexes=[1, 3], refused_indexes=[4]), ok())
    s, _ = sender(session)
    report = s.send(EVENTS)
    assert [e["id"] for e in session.batches[1]] == ["e1", "e3"]
    assert (report.succeeded, report.refused["invalid_event"], report.gave_up) == (4, 1, 0)
    assert report.ok


def test_retry_after_is_honoured_then_backoff():
    session = ScriptedSession(lambda b: Answer(503, {"error": {"code": "pubsub_unavailable"}}, "7"),
                              requests.ConnectionError("down"), ok())
    s, sleeps = sender(session)
    report = s.send(EVENTS)
    assert report.succeeded == 5 and report.requests == 3
    assert 7 <= sleeps[0] < 7.5
    assert 0 <= sleeps[1] <= 1.0  # full jitter, second attempt: base * 2
    assert all(b == session.batches[0] for b in session.batches)


def test_gives_up_after_max_time_and_reports():
    session = ScriptedSession(*[lambda b: Answer(503, {}, "10")] * 10)
    s, _ = sender(session, max_time_s=25)
    report = s.send(EVENTS)
    assert report.gave_up == 5 and not report.ok


def test_auth_refusal_stops_and_reports_everything():
    session = ScriptedSession(lambda b: Answer(401, {"error": {"code": "untrusted_license"}}))
    s, _ = sender(session, batch_size=2)
    report = s.send(EVENTS)
    assert report.refused == {"untrusted_license": 5} and report.requests == 1 and report.ok


def test_too_large_splits_batch():
    session = ScriptedSession(lambda b: Answer(413, {"error": {"code": "body_too_large"}}), ok(), ok(), ok())
    s, _ = sender(session, batch_size=4)
    report = s.send(EVENTS)
    assert [len(b) for b in session.batches] == [4, 2, 2, 1]
    assert report.succeeded == 5

def test_connection_broken_mid_answer_is_resent():
    session = ScriptedSession(requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), ok())
    s, sleeps = sender(session)
    report = s.send(EVENTS)
    assert session.batches[0] == session.batches[1] == EVENTS
    assert (report.succeeded, report.retries, report.requests, report.gave_up) == (5, 1, 2, 0)
    assert len(sleeps) == 1


def test_connection_reset_before_the_answer_is_resent():
    session = ScriptedSession(requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer")), ok())
    s, _ = sender(session)
    report = s.send(EVENTS)
    assert session.batches[0] == session.batches[1] == EVENTS
    assert (report.succeeded, report.retries, report.gave_up) == (5, 1, 0)
