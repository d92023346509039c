"""Session-wide real dependencies: the Pub/Sub emulator, license key pairs, function servers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.api_core import exceptions as gexc

from devtools.emulators import BigQueryEmulator, start_bigquery, start_pubsub
from devtools.functions import start_function
from devtools.procs import Service
from devtools.topology import clients, ensure_subscription, ensure_topic
from shared.envelope import is_requests
from tests.helpers import KeyPair, TokenIssuer

PROJECT = "test-project"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Contract tests run against a live deployment with --url ($TELEMETRY_LICENSE_KEY for the licensed cases)."""
    parser.addoption("--url", default=None, help="base URL of a deployed ingest function (default: a local one)")


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Service]:
    """The real Pub/Sub emulator on a free port; stopped by its pid at the end."""
    service = start_pubsub()
    with pytest.MonkeyPatch.context() as patch:  # the session's clients find the emulator; restored after
        patch.setenv("PUBSUB_EMULATOR_HOST", service.host)
        yield service
    service.stop()


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[BigQueryEmulator]:
    """The BigQuery emulator on free ports, for tests of single modules; stopped by its pid at the end."""
    emulator = start_bigquery(PROJECT)
    yield emulator
    emulator.stop()


@pytest.fixture
def bigquery_env(bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings of a sink on the emulator with a dataset of its own (set in os.environ for this test only)."""
    env = {"TELEMETRY_ENV": "dev", "BQ_DATASET": f"t_{uuid.uuid4().hex[:10]}", "BQ_TIMEOUT_SECONDS": "10",
           **bigquery_emulator.env()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def pubsub_clients(pubsub_emulator: Service) -> tuple:
    """Publisher and subscriber clients bound to the emulator."""
    return clients(pubsub_emulator.host)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Key pairs: 'prod' (stands in for Sourcegraph's), 'dev', 'stranger' (trusted nowhere), 'ed' (Ed25519)."""
    base = tmp_path_factory.mktemp("keys")
    return {
        "prod": KeyPair(base / "prod"),
        "dev": KeyPair(base / "dev"),
        "stranger": KeyPair(base / "stranger"),
        "ed": KeyPair(base / "ed", "ed25519"),
    }


@pytest.fixture(scope="session")
def google_certs() -> Iterator[dict]:
    """A local stand-in for Google's ID token certificate endpoint, serving a test issuer's certificate.

    Answers with Cache-Control like Google's; counts the requests it gets.
    """
    import http.server
    import threading

    import orjson

    issuer, hits = TokenIssuer(), [0]

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[0] += 1
            body = orjson.dumps(issuer.certs())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=19800, must-revalidate, no-transform")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"issuer": issuer, "url": f"http://127.0.0.1:{server.server_port}/oauth2/v1/certs", "hits": hits}
    server.shutdown()


@pytest.fixture(scope="session")
def revoked_license(keys: dict[str, KeyPair]) -> str:
    """A prod license that the prod server's revocation list names."""
    return keys["prod"].issue(tags=("plan:revoked",))


@pytest.fixture(scope="session")
def server_factory(pubsub_clients: tuple, pubsub_emulator: Service) -> Iterator[Callable[..., Service]]:
    """Start ingest servers per scenario (cached by settings); every one stopped at the end."""
    started: dict[tuple, Service] = {}
    publisher, _ = pubsub_clients

    def factory(**env: str) -> Service:
        key = tuple(sorted(env.items()))
        if key not in started:
            topic = f"events-{uuid.uuid4().hex[:8]}"
            ensure_topic(publisher, PROJECT, topic)
            full = {"PUBSUB_EMULATOR_HOST": pubsub_emulator.host, "GOOGLE_CLOUD_PROJECT": PROJECT,
                    "PUBSUB_TOPIC": topic, **env}
            service = start_function("ingest", full)
            service.topic = topic
            started[key] = service
        return started[key]

    yield factory
    for service in started.values():
        service.stop()


@pytest.fixture(scope="session")
def prod_server(server_factory: Callable[..., Service], keys: dict[str, KeyPair], revoked_license: str,
                tmp_path_factory: pytest.TempPathFactory) -> Service:
    """prod: trusts the 'prod' and 'ed' keys, knows 'dev' as the other environment, revokes one license."""
    from shared.ingest.licenses.keys import decode_license

    base = tmp_path_factory.mktemp("prod-config")
    trusted = base / "trusted.pub"
    trusted.write_text(keys["prod"].public_path.read_text() + keys["ed"].public_path.read_text())
    revoked = base / "revoked.txt"
    revoked.write_text(f"# revoked in a test\n{decode_license(revoked_license).fingerprint}  # plan:revoked\n")
    return server_factory(TELEMETRY_ENV="prod", TRUSTED_LICENSE_KEYS_FILE=str(trusted),
                          OTHER_ENV_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                          REVOKED_LICENSES_FILE=str(revoked), MAX_EVENTS_PER_REQUEST="100",
                          MAX_REQUEST_BYTES=str(256 * 1024))


@pytest.fixture(scope="session")
def dev_server(server_factory: Callable[..., Service], keys: dict[str, KeyPair]) -> Service:
    """dev: trusts only the 'dev' key; 'prod' is the other environment."""
    return server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                          OTHER_ENV_LICENSE_KEYS_FILE=str(keys["prod"].public_path))


@pytest.fixture
def subscription(pubsub_clients: tuple) -> Callable[[Service], Callable[..., list]]:
    """Attach a fresh pull subscription to a server's topic; returns a function that pulls every events batch
    (request-log messages, on the same topic, are acknowledged and left out)."""
    _, subscriber = pubsub_clients

    def attach(server: Service) -> Callable[..., list]:
        topic = f"projects/{PROJECT}/topics/{server.topic}"
        path = ensure_subscription(subscriber, PROJECT, f"pull-{uuid.uuid4().hex[:8]}", topic)

        def pull(expect: int = 1, timeout: float = 5.0) -> list:
            got: list = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    resp = subscriber.pull(subscription=path, max_messages=100, timeout=2.0, retry=None)
                except gexc.DeadlineExceeded:
                    continue
                if resp.received_messages:
                    subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in resp.received_messages])
                    got += [m.message for m in resp.received_messages if not is_requests(m.message.attributes)]
                if len(got) >= expect > 0:
                    break
            return got

        return pull

    return attach


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory, google_certs: dict) -> Iterator:
    """The whole local pipeline (own Pub/Sub and BigQuery emulators, both functions)."""
    from devtools.pipeline import LocalPipeline

    policy = tmp_path_factory.mktemp("policy")
    (policy / "allowlist").write_text("# the pipeline tests' privacy policy\ncody.completion:*\n")
    (policy / "marketing").write_text("inst-columns\n")
    (policy / "services").write_text("cody-gateway cody-gateway@svc-project.iam.gserviceaccount.com\n")
    running = LocalPipeline(tmp_path_factory.mktemp("pipeline"), dataset="telemetry_test",
                            extra_env={"BQ_TIMEOUT_SECONDS": "4", "BQ_RETRY_BUDGET_SECONDS": "8",
                                       "PUBLISH_TIMEOUT_SECONDS": "2", "RETRY_AFTER_SECONDS": "1",
                                       "PRIVATE_METADATA_ALLOWLIST_FILE": str(policy / "allowlist"),
                                       "MARKETING_TRACKING_INSTANCES_FILE": str(policy / "marketing"),
                                       "MANAGED_SERVICES_FILE": str(policy / "services"),
                                       "ID_TOKEN_AUDIENCE": "https://telemetry-ingest.local",
                                       "GOOGLE_ID_TOKEN_CERTS_URL": google_certs["url"]}).start()
    yield running
    running.stop()
