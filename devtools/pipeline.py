"""The whole pipeline on this machine: emulators, topics, both functions. `make run` drives it."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.emulators import BigQueryEmulator, start_bigquery, start_pubsub
from devtools.functions import start_function
from devtools.procs import ROOT
from devtools.topology import clients, ensure_subscription, ensure_topic
from shared.config import Config
from shared.ingest.licenses.keys import generate_private_key, load_private_key, private_key_pem, public_key_line
from shared.sink.bq import bigquery_client, ensure_dataset, expiration_days
from shared.sink.tables import EVENTS
from shared.tools import aggregates


@dataclass
class LocalPipeline:
    """Pub/Sub emulator -> push -> sink -> BigQuery emulator, with ingest in front. Stops what it starts."""

    workdir: Path
    project: str = "local-project"
    dataset: str = "telemetry"
    topic: str = "telemetry-events"
    max_delivery_attempts: int = 5
    extra_env: dict = field(default_factory=dict)
    services: list = field(default_factory=list)

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
        self.pubsub = start_pubsub()
        self.services.append(self.pubsub)
        self.bigquery: BigQueryEmulator = start_bigquery(self.project)
        self.services.append(self.bigquery)
        self.env = {
            "PUBSUB_EMULATOR_HOST": self.pubsub.host, "GOOGLE_CLOUD_PROJECT": self.project,
            "TELEMETRY_ENV": "dev", "PUBSUB_TOPIC": self.topic, "BQ_DATASET": self.dataset,
            "TRUSTED_LICENSE_KEYS_FILE": str(self.workdir / "license-key.pub"),
            **self.bigquery.env(), **self.extra_env,
        }
        os.environ.update({k: v for k, v in self.env.items() if k.endswith("_HOST")})
        ensure_dataset(self.config)
        # The aggregates as deploy.sh makes them, except that the materialized view is a plain view here.
        aggregates.create(self.bq(), self.dataset_ref, expiration_days(self.config, EVENTS), materialized=False)
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
        self.ingest = start_function("ingest", self.env)
        self.services.append(self.ingest)

    @property
    def config(self) -> Config:
        """The settings both functions run with."""
        return Config.from_env(self.env)

    @property
    def dataset_ref(self) -> str:
        """project.dataset."""
        return f"{self.project}.{self.dataset}"

    def bq(self):  # noqa: ANN201 - google.cloud.bigquery.Client
        """A BigQuery client on the emulator."""
        return bigquery_client(self.config)

    def issue_license(self, tags: tuple[str, ...] = ("dev",)) -> str:
        """A dev-private license signed with this pipeline's dev key."""
        from shared.ingest.licenses.keys import encode_license

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

    def stop(self) -> None:
        """Stop every started process by its pid, newest first."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


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


def main() -> int:
    """`make run`: start everything, send a demo load, print a summary, wait for Ctrl-C."""
    from devtools.demo import run_demo

    pipeline = LocalPipeline(ROOT / ".local" / "pipeline")
    print("starting emulators and functions ...", flush=True)
    pipeline.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        run_demo(pipeline)
        print("\nRunning. Ctrl-C stops everything this command started.", flush=True)
        while all(getattr(s, "service", s).proc.poll() is None for s in pipeline.services):
            time.sleep(1)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not leave processes behind
            signal.signal(sig, signal.SIG_IGN)
        pipeline.stop()


if __name__ == "__main__":
    sys.exit(main())
