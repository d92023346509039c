"""The whole pipeline on this machine: emulators, topics, the warehouse, both functions (`make run`, tests)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.emulators import PUBSUB_HEAP_MB, BigQueryEmulator, start_bigquery, start_pubsub
from devtools.functions import start_function
from devtools.load_balancer import LOCAL_ADDRESS, LoadBalancer
from devtools.topology import clients, ensure_subscription, ensure_topic
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.warehouse import fresh_statements
from tools.edge import policy_rules
from tools.settings import settings_file
from tools.signing import generate_private_key, load_private_key, private_key_pem, public_key_line


@dataclass
class LocalPipeline:
    """Pub/Sub emulator -> push -> sink -> BigQuery emulator, with ingest in front and the edge (a local load
    balancer applying deploy/dev.env's Cloud Armor policy) in front of ingest. Stops what it starts."""

    workdir: Path
    project: str = "local-project"
    dataset: str = "telemetry"
    topic: str = "telemetry-events"
    max_delivery_attempts: int = 5
    ingest_workers: int = 1  # gunicorn workers of the ingest server (8 threads each)
    pubsub_heap_mb: int = PUBSUB_HEAP_MB  # the emulator keeps every message: a long run needs more
    extra_env: dict = field(default_factory=dict)
    services: list = field(default_factory=list)
    edge: LoadBalancer | None = None

    def start(self) -> LocalPipeline:
        """Start everything; on failure stop what was started."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dev_key = self._dev_key()
        self.pubsub = start_pubsub(heap_mb=self.pubsub_heap_mb)
        self.services.append(self.pubsub)
        self.bigquery: BigQueryEmulator = start_bigquery(self.project)
        self.services.append(self.bigquery)
        self.env = {
            "PUBSUB_EMULATOR_HOST": self.pubsub.host, "GOOGLE_CLOUD_PROJECT": self.project,
            "TELEMETRY_ENV": "dev", "PUBSUB_TOPIC": self.topic, "BQ_DATASET": self.dataset,
            "TRUSTED_LICENSE_KEYS_FILE": str(self.workdir / "license-key.pub"), "EDGE_ADDRESS": LOCAL_ADDRESS,
            **self.bigquery.env(), **self.extra_env,
        }
        create_warehouse(self.config)
        self.publisher, self.subscriber = clients(self.pubsub.host)
        self.topic_path = ensure_topic(self.publisher, self.project, self.topic)
        self.dead_letter_topic = ensure_topic(self.publisher, self.project, f"{self.topic}-dead-letter")
        self.dead_letter_subscription = ensure_subscription(
            self.subscriber, self.project, f"{self.topic}-dead-letter-pull", self.dead_letter_topic)
        self.sink = start_function("sink", self.env)
        self.services.append(self.sink)
        self.push_subscription = ensure_subscription(
            self.subscriber, self.project, f"{self.topic}-sink", self.topic_path, push_endpoint=self.sink.url,
            dead_letter_topic=self.dead_letter_topic, max_delivery_attempts=self.max_delivery_attempts)
        self.ingest = start_function("ingest", self.env, workers=self.ingest_workers)
        self.services.append(self.ingest)
        self.edge = LoadBalancer(self.ingest.url, rules=policy_rules(settings_file("dev")),
                                 address=LOCAL_ADDRESS).start()

    @property
    def config(self) -> SinkConfig:
        """The sink's settings (dataset, BigQuery endpoints)."""
        return SinkConfig.from_env(self.env)

    @property
    def dataset_ref(self) -> str:
        """project.dataset."""
        return f"{self.project}.{self.dataset}"

    def bq(self):  # noqa: ANN201 - google.cloud.bigquery.Client
        """A BigQuery client on the emulator."""
        return bigquery_client(self.config)

    def issue_license(self, tags: tuple[str, ...] = ("dev",)) -> str:
        """A dev-private license signed with this pipeline's dev key."""
        from tools.signing import encode_license

        info = {"v": 3, "n": list(uuid.uuid4().bytes[:8]), "t": list(tags), "u": 100,
                "e": "2099-01-01T00:00:00Z", "c": "2026-01-01T00:00:00Z"}
        return encode_license(info, self.dev_key)

    def _dev_key(self):
        private = self.workdir / "license-key"
        if private.exists():
            return load_private_key(private)
        key = generate_private_key("ed25519")
        private.write_bytes(private_key_pem(key))
        private.chmod(0o600)
        (self.workdir / "license-key.pub").write_text(public_key_line(key.public_key()) + "\n")
        return key

    def replace_sink(self) -> None:
        """Start a new sink server on the old one's port (the push endpoint), e.g. after it was killed."""
        old = self.sink
        old.stop()
        self.sink = start_function("sink", self.env, port=old.port)
        self.services[self.services.index(old)] = self.sink

    def stop(self) -> None:
        """Stop the edge, then every started process by its pid, newest first."""
        if self.edge is not None:
            self.edge.stop()
            self.edge = None
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def create_warehouse(config: SinkConfig) -> None:
    """The dataset and every object in it, as deploy.sh creates them (the materialized view as a plain view:
    the emulator has none)."""
    client = bigquery_client(config)
    client.create_dataset(config.dataset_ref, exists_ok=True, timeout=config.bq_timeout_s)
    for statement in fresh_statements(config.dataset_ref, config.expiration_days, materialized=False):
        client.query(statement, timeout=config.bq_timeout_s).result(timeout=config.bq_timeout_s)


def wait_for_rows(client, table: str, expected: int, timeout: float = 60.0) -> int:  # noqa: ANN001
    """Poll COUNT(*) of a table or view until it reaches expected; return the last count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = next(iter(client.query(f"SELECT COUNT(*) AS n FROM {table}", timeout=30).result(timeout=60))).n
        if count >= expected:
            return count
        time.sleep(0.3)
    return count
