"""Minimal reproduction: the Pub/Sub emulator stops redelivering failed pushes after two fail together.

`python -m devtools.pubsub_redelivery_repro [--patched]` starts its own emulator, one push subscription
per scenario (retry policy 1-10 s and a dead-letter policy of 5 attempts, as the local pipeline has) and a
local endpoint that answers 500 to the first FAILS deliveries of each message and 204 after. Real Pub/Sub
redelivers every message until the endpoint acks it (or the dead-letter policy moves it), so each message
must be delivered FAILS + 1 times. Prints the deliveries per message; exits 1 if any message got fewer.

Scenarios: `alone` (one message), `together` (two messages published at once, so both pushes fail in the
same instant). With the stock emulator 0.8.20 `together` loses its redeliveries: see
devtools/pubsub_emulator_fix/README.md for the cause.
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time
import uuid
from collections import defaultdict

import orjson

from devtools.emulators import start_pubsub
from devtools.topology import clients, ensure_subscription, ensure_topic

FAILS = 3
PROJECT = "repro-project"


class Endpoint:
    """A push endpoint: 500 for the first FAILS deliveries of each message id, then 204; counts deliveries."""

    def __init__(self) -> None:
        self.deliveries: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = f"{self.path.strip('/')}/{body['message']['messageId']}"
                with endpoint.lock:
                    endpoint.deliveries[key].append(time.monotonic())
                    count = len(endpoint.deliveries[key])
                self.send_response(500 if count <= FAILS else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def counts(self, scenario: str) -> dict[str, int]:
        """Deliveries per message id of one scenario."""
        with self.lock:
            return {k.split("/", 1)[1]: len(v) for k, v in self.deliveries.items() if k.startswith(f"{scenario}/")}


def run(patched: bool, timeout_s: float = 40.0) -> int:
    """Run both scenarios on a fresh emulator; 0 if every message got FAILS + 1 deliveries, else 1."""
    emulator = start_pubsub(patched=patched)
    endpoint = Endpoint()
    try:
        publisher, subscriber = clients(emulator.host)
        dead_letter = ensure_topic(publisher, PROJECT, "dead-letter")
        expected: dict[str, int] = {}
        for scenario, messages in (("alone", 1), ("together", 2)):
            topic = ensure_topic(publisher, PROJECT, f"{scenario}-{uuid.uuid4().hex[:6]}")
            ensure_subscription(subscriber, PROJECT, f"{scenario}-push", topic,
                                push_endpoint=f"{endpoint.url}/{scenario}", dead_letter_topic=dead_letter,
                                max_delivery_attempts=5)
            futures = [publisher.publish(topic, f"{scenario}-{i}".encode()) for i in range(messages)]
            for future in futures:
                future.result(timeout=10)
            expected[scenario] = messages
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(len(endpoint.counts(s)) == n and all(c > FAILS for c in endpoint.counts(s).values())
                   for s, n in expected.items()):
                break
            time.sleep(0.5)
        time.sleep(3)  # no extra deliveries after the ack
        lost = 0
        for scenario in expected:
            counts = endpoint.counts(scenario)
            short = sum(c <= FAILS for c in counts.values())
            lost += short
            print(f"{scenario:9s} deliveries per message: {dict(sorted(counts.items()))} "
                  f"(expected {FAILS + 1} each; {short} never redelivered after failing)")
        print(f"emulator: {'patched' if patched else 'stock'}; log {emulator.log_path}")
        return 1 if lost else 0
    finally:
        endpoint.server.shutdown()
        emulator.stop()


def main() -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patched", action="store_true", help="run the emulator with the local fix")
    return run(parser.parse_args().patched)


if __name__ == "__main__":
    sys.exit(main())
