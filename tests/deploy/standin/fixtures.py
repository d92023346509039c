"""pytest fixtures: the Pub/Sub and BigQuery emulators and the stand-in, once per session, with the environment
that runs deploy.sh through the real gcloud and bq. Import them in a conftest or test module."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.emulators import BigQueryEmulator, start_bigquery, start_pubsub
from devtools.procs import Service
from tests.deploy.standin.cli import activate_account, cli_env
from tests.deploy.standin.process import start_standin, state
from tests.deploy.standin.settings import Settings

BQ_PROJECT = "sourcegraph-telemetry-gateway-dev"


@dataclass
class Stack:
    """The running servers, the CLI environment and what the stand-in saw."""

    pubsub: Service
    bigquery: BigQueryEmulator
    standin: Service
    log: Path
    env: dict[str, str]

    def requests(self) -> list[dict]:
        """Every request recorded since the last reset (method, path, query, status, body)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def reset_requests(self) -> None:
        """Forget the recorded requests."""
        self.log.write_text("")

    def state(self) -> dict:
        """The stand-in's state."""
        return state(self.standin)

    @contextlib.contextmanager
    def behaviour(self, **settings: object) -> Iterator[None]:
        """Change stand-in settings (tests/deploy/standin/settings.py) for the block; restored after."""
        before = self._settings({})
        self._settings(settings)
        try:
            yield
        finally:
            self._settings({k: before[k] for k in settings})

    def _settings(self, changes: dict) -> dict:
        """Apply changes (none: just read); the settings as they are then."""
        request = urllib.request.Request(f"{self.standin.url}/__standin/settings", method="POST",
                                         data=json.dumps(changes).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def stop(self) -> None:
        """Stop every process by its pid."""
        for service in (self.standin, self.pubsub):
            service.stop()
        self.bigquery.stop()


def start_stack(home: Path, settings: Settings | None = None, project: str = BQ_PROJECT) -> Stack:
    """Start both emulators and the stand-in on free ports; stops what started if a later start fails."""
    started: list = []
    try:
        pubsub = start_pubsub()
        started.append(pubsub)
        bigquery = start_bigquery(project)
        started.append(bigquery)
        log = home / "requests.jsonl"
        log.write_text("")
        standin = start_standin(pubsub.host, bigquery.rest_host, log, settings)
        started.append(standin)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    env = {**cli_env(standin.url, home), "PYTHON": sys.executable, "DEPLOY_RETRY_SECONDS": "0",
           "BUILD_RETRY_SECONDS": "2"}
    stack = Stack(pubsub, bigquery, standin, log, env)
    try:
        activate_account(env, home, standin.url)
    except BaseException:
        stack.stop()
        raise
    stack.reset_requests()
    return stack


@pytest.fixture(scope="session")
def standin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stand-in and its emulators for the session; stopped by pid at the end (also after failures)."""
    stack = start_stack(tmp_path_factory.mktemp("standin"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def cli_environ(standin_stack: Stack) -> dict[str, str]:
    """os.environ plus the stand-in's CLI environment (for subprocess.run(env=...))."""
    return {**os.environ, **standin_stack.env}
