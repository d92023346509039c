"""Start the stand-in as its own process on a free port; stop it by its pid (devtools.procs)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from devtools.procs import Service, free_port, start
from tests.deploy.standin.settings import Settings


def start_standin(pubsub_host: str, bigquery_host: str, log: Path, settings: Settings | None = None) -> Service:
    """`python -m tests.deploy.standin` on a free port, ready when it accepts connections."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.deploy.standin", "--port", str(port), "--pubsub", pubsub_host,
           "--bigquery", bigquery_host, "--log", str(log), *(settings or Settings()).to_argv()]
    return start("standin", cmd, port).wait_ready(30)


def state(service: Service, timeout: float = 10.0) -> dict:
    """The stand-in's state (every API's resources)."""
    with urllib.request.urlopen(f"{service.url}/__standin/state", timeout=timeout) as answer:
        return json.load(answer)
