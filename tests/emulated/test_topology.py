"""devtools.topology on the Pub/Sub emulator: clients bound to the emulator given, the process's settings untouched."""

from __future__ import annotations

import os
import uuid

from devtools.procs import free_port
from devtools.topology import clients, ensure_topic
from tests.conftest import PROJECT


def test_clients_reach_the_emulator_given_and_leave_the_environment_alone(pubsub_emulator, monkeypatch):
    elsewhere = f"127.0.0.1:{free_port()}"  # what a lazily created client of this process must keep reading
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", elsewhere)
    publisher, _ = clients(pubsub_emulator.host)
    path = ensure_topic(publisher, PROJECT, f"topology-{uuid.uuid4().hex[:8]}")
    assert publisher.get_topic(topic=path, timeout=5).name == path
    assert os.environ["PUBSUB_EMULATOR_HOST"] == elsewhere


def test_clients_leave_an_unset_emulator_host_unset(pubsub_emulator, monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    clients(pubsub_emulator.host)
    assert "PUBSUB_EMULATOR_HOST" not in os.environ
