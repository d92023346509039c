"""A batch whose connection broke mid-answer (a worker killed while it replied) is re-sent, like one that got
no answer; tests/integration/test_client_broken_connection.py shows the same on a real socket."""

from __future__ import annotations

import requests

from tests.unit.tools.test_client import EVENTS, ScriptedSession, ok, sender


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
