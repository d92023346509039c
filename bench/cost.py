"""Cost per million events from measured bytes and CPU, with public list prices as named constants."""

from __future__ import annotations

TIB = 1024**4
GIB = 1024**3
# Public list prices (USD), us-central1, as published by Google Cloud.
PUBSUB_THROUGHPUT_PER_TIB = 40.0          # publish, and again for delivery; 1 KB minimum per request/message
PUBSUB_MIN_BYTES = 1000
BQ_STORAGE_WRITE_PER_GIB = 0.025          # Storage Write API ingestion (first 2 TiB/month free: not counted)
BQ_SUBSCRIPTION_PER_TIB = 50.0            # Pub/Sub -> BigQuery subscription write (~$0.05 per million 1 KB msgs)
RUN_VCPU_SECOND = 0.000024                # Cloud Functions 2nd gen (Cloud Run) CPU
RUN_GIB_SECOND = 0.0000025                # memory
RUN_PER_MILLION_REQUESTS = 0.40
MEMORY_GIB = 0.5                          # --memory=512Mi as deployed
BATCH = 500


def _run_cost(cpu_s: float, requests: float) -> float:
    """Function cost when billed for the CPU time actually used (lower bound: busy, concurrent instances)."""
    return cpu_s * (RUN_VCPU_SECOND + MEMORY_GIB * RUN_GIB_SECOND) + requests / 1e6 * RUN_PER_MILLION_REQUESTS


def _pubsub(messages: float, bytes_each: float) -> float:
    """Publish + one delivery, each billed at least 1 KB per message."""
    return 2 * messages * max(PUBSUB_MIN_BYTES, bytes_each) / TIB * PUBSUB_THROUGHPUT_PER_TIB


def model(m: dict) -> dict:
    """$ per million events for three designs, from measured per-event figures in m."""
    n = 1e6
    ingest_cpu = m["ingest_cpu_us_per_event"] * 1e-6 * n
    sink_cpu = m["sink_cpu_us_per_event"] * 1e-6 * n
    storage_write = n * m["row_bytes"] / GIB * BQ_STORAGE_WRITE_PER_GIB
    batched = {
        "pubsub": _pubsub(n / BATCH, m["pubsub_bytes_per_event"] * BATCH),
        "functions": _run_cost(ingest_cpu, n / BATCH) + _run_cost(sink_cpu, n / BATCH),
        "bigquery": storage_write,
    }
    per_event = {  # Sourcegraph's gateway: one uncompressed message per event, a sink invocation per message
        "pubsub": _pubsub(n, m["event_json_bytes"]),
        "functions": _run_cost(ingest_cpu, n / BATCH) + _run_cost(sink_cpu, n),
        "bigquery": storage_write,
    }
    subscription = {  # one message per event straight into a BigQuery subscription: no sink function
        "pubsub": n * max(PUBSUB_MIN_BYTES, m["event_json_bytes"]) / TIB * PUBSUB_THROUGHPUT_PER_TIB,
        "functions": _run_cost(ingest_cpu, n / BATCH),
        "bigquery": n * max(PUBSUB_MIN_BYTES, m["event_json_bytes"]) / TIB * BQ_SUBSCRIPTION_PER_TIB,
    }
    designs = {"a_batched_gzip_storage_write": batched, "b_message_per_event": per_event,
               "c_message_per_event_bq_subscription": subscription}
    return {name: {**parts, "total": sum(parts.values())} for name, parts in designs.items()}
