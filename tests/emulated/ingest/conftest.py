"""Per-scenario ingest apps: functions-framework's own app for functions/ingest/main.py on the Pub/Sub emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import functions_framework
import pytest
from flask.testing import FlaskClient

from devtools.procs import ROOT
from devtools.topology import ensure_subscription, ensure_topic
from shared.envelope import is_requests
from tests.conftest import PROJECT
from tests.helpers import KeyPair

INGEST_MAIN = str(ROOT / "functions" / "ingest" / "main.py")


@pytest.fixture
def topic(pubsub_clients: tuple) -> str:
    """A fresh topic on the emulator (its id)."""
    publisher, _ = pubsub_clients
    name = f"unit-{uuid.uuid4().hex[:8]}"
    ensure_topic(publisher, PROJECT, name)
    return name


@pytest.fixture
def pull(pubsub_clients: tuple, topic: str) -> Callable[..., list]:
    """Pull (and ack) what reached the topic since this fixture attached: the events batches, or with
    requests=True the request-log messages (the other kind is acknowledged and left out)."""
    _, subscriber = pubsub_clients
    path = ensure_subscription(subscriber, PROJECT, f"sub-{uuid.uuid4().hex[:8]}", f"projects/{PROJECT}/topics/{topic}")

    def pull_all(requests: bool = False) -> list:
        resp = subscriber.pull(subscription=path, max_messages=100, timeout=10)
        if resp.received_messages:
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in resp.received_messages])
        return [m.message for m in resp.received_messages if is_requests(m.message.attributes) is requests]

    return pull_all


@pytest.fixture
def ingest_app(monkeypatch: pytest.MonkeyPatch, pubsub_emulator, keys: dict[str, KeyPair],
               topic: str) -> Callable[..., FlaskClient]:
    """Build the ingest app with these settings (on top of a dev deployment); env restored afterwards."""

    def build(**env: str) -> FlaskClient:
        settings = {"TELEMETRY_ENV": "dev", "TRUSTED_LICENSE_KEYS_FILE": str(keys["dev"].public_path),
                    "GOOGLE_CLOUD_PROJECT": PROJECT, "PUBSUB_TOPIC": topic,
                    "PUBSUB_EMULATOR_HOST": pubsub_emulator.host, **env}
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        return functions_framework.create_app("ingest", INGEST_MAIN, "http").test_client()

    return build
