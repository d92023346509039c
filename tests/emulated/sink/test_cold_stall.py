"""A sink instance whose first delivery meets a frozen BigQuery fails it in bounded time, then recovers."""

from __future__ import annotations

import base64
import signal
import threading
import time
import uuid

import pytest

from devtools.pipeline import create_warehouse
from shared.envelope import Batch, Identity, encode
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.loader import Sink
from tests.helpers import make_event

pytestmark = pytest.mark.integration

IDENTITY = Identity("inst-cold", None, "fp", ("dev",), "dev", "licensed_instance")


def test_cold_sink_fails_a_delivery_in_bounded_time_while_bigquery_is_frozen(bigquery_emulator, bigquery_env,
                                                                             monkeypatch):
    """Preparation (columns, writers) used to wait for BigQuery with the clients' 600 s retries.

    Now the delivery fails after max(budget, timeout) = 3 s, and a redelivery after the thaw loads the batch.
    """
    monkeypatch.setenv("BQ_RETRY_BUDGET_SECONDS", "3")
    monkeypatch.setenv("BQ_TIMEOUT_SECONDS", "2")
    create_warehouse(SinkConfig.from_env())  # as deploy.sh leaves it: the sink creates nothing
    sink = Sink(SinkConfig.from_env())
    event = make_event()
    data, attributes = encode(Batch(IDENTITY, "req-cold", "2026-11-28T00:00:00+00:00", [event]))
    message = {"message": {"data": base64.b64encode(data).decode(), "attributes": attributes,
                           "messageId": f"m-{uuid.uuid4().hex[:8]}", "publishTime": "2026-11-28T00:00:00Z"}}
    outcome: dict = {}

    def deliver() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = sink.handle(message)
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    bigquery_emulator.service.signal(signal.SIGSTOP)
    try:
        delivery = threading.Thread(target=deliver, daemon=True)
        delivery.start()
        delivery.join(15)
        assert not delivery.is_alive(), "the delivery still waits for a frozen BigQuery after 15 s"
    finally:
        bigquery_emulator.service.signal(signal.SIGCONT)
    assert isinstance(outcome.get("error"), TimeoutError), outcome
    assert outcome["seconds"] < 5, outcome

    deadline = time.monotonic() + 90  # Pub/Sub's redeliveries, until the preparation completes
    try:
        while True:
            try:
                assert sink.handle(message) == {"events": 1, "inserted": 1, "rejected": 0}
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "the sink never became ready after the thaw"
                time.sleep(1)
    finally:
        sink.close()  # the session's emulator serves few connections at once: leave none open
    dataset = f"{bigquery_env['GOOGLE_CLOUD_PROJECT']}.{bigquery_env['BQ_DATASET']}"
    (row,) = bigquery_client(SinkConfig.from_env(bigquery_env)).query(
        f"SELECT COUNT(*) AS n FROM `{dataset}.events` WHERE event_id = '{event['id']}'").result(timeout=30)
    assert row.n == 1
