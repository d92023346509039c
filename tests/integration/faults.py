"""What the fault tests share: the patched-emulator check, their figures for `make faults`, id look-ups."""

from __future__ import annotations

import json
import os
import time

import pytest
from google.cloud import bigquery


@pytest.fixture(autouse=True)
def redelivering_emulator(pipeline):
    """These tests need failed pushes redelivered until acked, which the stock emulator stops doing."""
    assert pipeline.pubsub.patched, "the Pub/Sub emulator runs without devtools/pubsub_emulator_fix (see its README)"


def record(test: str, sent: int, rows: int, deduped: int, started: float) -> None:
    """Append this test's figures to $FAULTS_RECORD (if set); lost = sent - deduped."""
    path = os.environ.get("FAULTS_RECORD")
    if path:
        figures = {"test": test, "sent": sent, "rows": rows, "deduped": deduped, "lost": sent - deduped,
                   "seconds": round(time.monotonic() - started, 1)}
        with open(path, "a") as out:
            out.write(json.dumps(figures) + "\n")


def unloaded_messages(log: str) -> list[str]:
    """Message ids whose delivery failed and that were never loaded afterwards, from a sink log excerpt."""
    failed, loaded = [], set()
    for line in log.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("message") == "sink_failed":
            failed.append(entry.get("messageId"))
        elif entry.get("message") == "batch_loaded":
            loaded.add(entry.get("messageId"))
    return sorted(set(failed) - loaded)


def ids_in(pipeline, view: str, instance_id: str) -> list[str]:
    query = (f"SELECT event_id FROM `{pipeline.project}.{pipeline.dataset}.{view}` "
             "WHERE instance_id = @instance")
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("instance", "STRING",
                                                                                     instance_id)])
    return [r.event_id for r in pipeline.bq().query(query, job_config=config, timeout=30).result(timeout=60)]


def wait_for_ids(pipeline, instance_id: str, expected: set[str], timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        got = ids_in(pipeline, "events_deduped", instance_id)
        if set(got) >= expected or time.monotonic() > deadline:
            return got
        time.sleep(1)


