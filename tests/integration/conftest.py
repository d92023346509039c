"""Fixtures of the fuzz tests (JSON and protobuf bodies): the ingest app in process, an HTTP session, a license,
and a subscription that sees what each fuzz module published."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from devtools.procs import Service
from tests.helpers import KeyPair


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """One connection pool for a module's requests."""
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def prod_license(keys: dict[str, KeyPair]) -> str:
    """A license the prod server and the in-process app trust."""
    return keys["prod"].issue()


@pytest.fixture(scope="module")
def accepted_batches() -> list[int]:
    """Counts every answer that published a batch (200 with at least one succeeded event)."""
    return []


@pytest.fixture(scope="module")
def fuzz_pull(prod_server: Service, pubsub_clients: tuple) -> str:
    """A subscription attached before a module's fuzz run, to compare what was published with what was answered."""
    from devtools.topology import ensure_subscription
    from tests.conftest import PROJECT

    _, subscriber = pubsub_clients
    topic = f"projects/{PROJECT}/topics/{prod_server.topic}"
    return ensure_subscription(subscriber, PROJECT, f"fuzz-{uuid.uuid4().hex[:8]}", topic)


@pytest.fixture(scope="session")
def in_process(prod_server: Service, keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory,
               pubsub_emulator: Service):
    """functions-framework's own app for `ingest`, in this process, configured like prod_server."""
    import functions_framework

    from devtools.procs import ROOT

    trusted = tmp_path_factory.mktemp("fuzz") / "trusted.pub"
    trusted.write_text(keys["prod"].public_path.read_text())
    env = {"TELEMETRY_ENV": "prod", "TRUSTED_LICENSE_KEYS_FILE": str(trusted), "PUBSUB_TOPIC": prod_server.topic,
           "GOOGLE_CLOUD_PROJECT": "test-project", "MAX_EVENTS_PER_REQUEST": "100",
           "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    with pytest.MonkeyPatch.context() as patch:  # the settings are read at import; restored afterwards
        for name, value in env.items():
            patch.setenv(name, value)
        app = functions_framework.create_app("ingest", str(ROOT / "functions" / "ingest" / "main.py"))
    return app.test_client()
