"""What the pipeline tests share: sending through ingest or straight to Pub/Sub, and reading rows back."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import requests
from google.cloud import bigquery

from shared.envelope import Batch, Identity, encode
from tests.helpers import make_body


def table(pipeline, name: str) -> str:
    return f"`{pipeline.project}.{pipeline.dataset}.{name}`"


def rows_for(pipeline, name: str, ids: list[str], column: str = "event_id") -> list:
    query = f"SELECT * FROM {table(pipeline, name)} WHERE {column} IN UNNEST(@ids)"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", ids)])
    return list(pipeline.bq().query(query, job_config=config, timeout=30).result(timeout=60))


def wait_rows(pipeline, name: str, ids: list[str], expected: int, timeout: float = 60, column="event_id") -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_for(pipeline, name, ids, column)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def send(pipeline, events: list, instance_id: str = "inst-e2e", license_key: str | None = None) -> dict:
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", json=make_body(events, instance_id), timeout=30,
                         headers={"Authorization": f"Bearer {license_key or pipeline.issue_license()}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def publish_batch(pipeline, events: list, instance_id: str = "inst-direct", times: int = 1,
                  fingerprint: str = "fp-direct") -> None:
    """Publish a message as ingest would (bypassing its validation), `times` times."""
    identity = Identity(instance_id, "https://x.example.com", fingerprint, ("dev",), "dev", "licensed_instance")
    data, attributes = encode(Batch(identity, "req-direct", datetime.now(UTC).isoformat(), events))
    for _ in range(times):
        pipeline.publisher.publish(pipeline.topic_path, data, **attributes).result(timeout=10)


def flush_request_log(url: str, after_s: float = 1.2) -> None:
    """What publishes an ingest server's waiting request-log rows: a request that ends once they are due (after_s
    beyond REQUEST_LOG_FLUSH_SECONDS, 1 s by default; the log has no background thread: docs/api.md)."""
    time.sleep(after_s)
    requests.post(f"{url}/v1/events", data=b"{}", timeout=30,
                  headers={"Content-Type": "application/json", "User-Agent": "reqlog-flush/1"})


def request_rows(pipeline, column: str, values: list[str], expected: int, timeout: float = 60) -> list[dict]:
    """The requests rows whose column is one of values, once `expected` of them landed."""
    query = f"SELECT * FROM {table(pipeline, 'requests')} WHERE {column} IN UNNEST(@values)"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("values", "STRING", values)])
    deadline = time.monotonic() + timeout
    while True:
        rows = [dict(r.items()) for r in pipeline.bq().query(query, job_config=config).result()]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)
