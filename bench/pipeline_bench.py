"""With the whole local pipeline: Storage Write rows/s into the BigQuery emulator, and accept -> queryable lag."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from google.cloud import bigquery

from bench.cpu import IDENTITY, batch_body
from devtools.pipeline import LocalPipeline
from shared.envelope import Batch
from shared.sink.clients import write_client
from shared.sink.rows import context_columns, event_batch_columns, event_row, micros
from shared.sink.storage_write import TableWriter
from shared.sink.warehouse.tables import EVENTS
from tools.client import Sender
from tools.generate import generate


def sink_rows_per_s(pipeline: LocalPipeline, batches: int = 20) -> dict:
    """Transform + AppendRows of 500-row batches as the sink does per message: rows/s and client CPU per row."""
    config = pipeline.config
    writer = TableWriter(write_client(config), config.project, config.bq_dataset, EVENTS, config.bq_timeout_s)
    payloads = [batch_body(seed=100 + i)[1] for i in range(batches)]
    started, cpu = time.perf_counter(), time.process_time()
    for i, events in enumerate(payloads):
        now = datetime.now(UTC)
        context = context_columns(Batch(IDENTITY, f"bench-{i}", now.isoformat(), events), f"bench-{i}", micros(now))
        shared = writer.serialize(event_batch_columns(context, now))
        errors = writer.append([writer.serialize(event_row(e, now), shared) for e in events])
        assert not errors
    rows = batches * len(payloads[0])
    elapsed = time.perf_counter() - started
    return {"rows_per_s": rows / elapsed, "seconds_per_message": elapsed / batches,
            "cpu_s_per_message": (time.process_time() - cpu) / batches,
            "cpu_us_per_event": (time.process_time() - cpu) / rows * 1e6}


def lag(pipeline: LocalPipeline, batches: int = 20, spacing_s: float = 0.5) -> dict:
    """Send batches (one instance id each); poll BigQuery every 100 ms; lag = first poll seeing it all - accept."""
    prefix = f"lag-{int(time.time())}"
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    done = threading.Event()
    client = pipeline.bq()
    query = (f"SELECT instance_id, COUNT(DISTINCT event_id) AS n FROM `{pipeline.project}.{pipeline.dataset}.events`"
             " WHERE STARTS_WITH(instance_id, @prefix) GROUP BY instance_id")
    job = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("prefix", "STRING", prefix)])
    start = time.monotonic()

    def poll() -> None:
        while (not done.is_set() or len(visible) < len(accepted)) and time.monotonic() - start < 120:
            now = time.monotonic()
            for row in client.query(query, job_config=job, timeout=30).result(timeout=60):
                if row.n >= 100 and row.instance_id not in visible:
                    visible[row.instance_id] = now
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    license_key = pipeline.issue_license()
    for i in range(batches):
        instance = f"{prefix}-{i:03d}"
        report = Sender(pipeline.ingest.url, license_key, instance, batch_size=100).send(
            [e for _, e in generate(100, seed=1000 + i)])
        assert report.succeeded == 100
        accepted[instance] = time.monotonic()
        time.sleep(spacing_s)
    done.set()
    poller.join()
    lags = sorted(visible[i] - accepted[i] for i in accepted if i in visible)
    return {"batches": batches, "seen": len(lags), "p50_s": statistics.median(lags),
            "p95_s": lags[min(len(lags) - 1, int(len(lags) * 0.95))]}


def measure() -> dict:
    """Start the pipeline, measure, stop it."""
    pipeline = LocalPipeline(Path(tempfile.mkdtemp(prefix="bench-pipeline-")), dataset="bench").start()
    try:
        return {"sink": sink_rows_per_s(pipeline), "lag": lag(pipeline)}
    finally:
        pipeline.stop()
