"""Publishing to Pub/Sub (the emulator): confirmed ids, and Unavailable when Pub/Sub cannot take it."""

from __future__ import annotations

import time

import pytest

from devtools.procs import free_port
from shared.errors import Unavailable
from shared.ingest.publisher import Publisher
from tests.conftest import PROJECT


def test_publish_returns_the_confirmed_message_id(pubsub_emulator, topic, pull, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    publisher = Publisher(f"projects/{PROJECT}/topics/{topic}", 5, 7)
    message_id = publisher.publish(b"data", {"k": "v"})
    (message,) = pull()
    assert (message.message_id, message.data, dict(message.attributes)) == (message_id, b"data", {"k": "v"})
    assert publisher.topic_exists() is True


def test_missing_topic_is_unavailable(pubsub_emulator, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    publisher = Publisher(f"projects/{PROJECT}/topics/absent", 2, 7)
    assert publisher.topic_exists() is False
    with pytest.raises(Unavailable) as exc:
        publisher.publish(b"x", {})
    assert (exc.value.status, exc.value.code, exc.value.retry_after) == (503, "pubsub_unavailable", 7)


def test_unreachable_pubsub_is_unavailable_within_the_bound(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    publisher = Publisher(f"projects/{PROJECT}/topics/t", 1.0, 3)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        publisher.publish(b"x", {})
    assert time.monotonic() - started < 1.0 + 2 + 1  # the publish bound, the result's grace, slack
