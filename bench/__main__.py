"""`make bench`: every figure measured in one run, side by side; prints a table, writes bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cold_start, cost, cpu, http_load, pipeline_bench, request_log

OUT = Path(__file__).resolve().parent / "results.json"


def machine() -> dict:
    """Cores and CPU model of this machine."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def main() -> int:
    """Run everything (about 1-2 minutes on 2 cores)."""
    started = time.monotonic()
    print("0/4 cold-start import time of each function ...", flush=True)
    cold = cold_start.measure()
    print("1/4 ingest CPU per event (in process, interleaved rounds) ...", flush=True)
    ingest = cpu.measure_ingest()
    print("2/4 sink transform ...", flush=True)
    transform = cpu.measure_sink_transform()
    logged = request_log.measure()
    log_costs = {"busy": cost.request_log_per_million_events(logged, logged["busy_rows_per_message"]),
                 "idle": cost.request_log_per_million_events(logged, 1)}
    print("3/4 HTTP throughput and latency (functions-framework + Pub/Sub emulator) ...", flush=True)
    http = http_load.measure()
    print("4/4 sink into the BigQuery emulator and end-to-end lag (whole local pipeline) ...", flush=True)
    pipe = pipeline_bench.measure()
    sink = pipe["sink"]
    # Deployed, the sink has 0.333 vCPU: its CPU time stretches 3x, its waiting on BigQuery does not.
    sink_message_s = sink["cpu_s_per_message"] / cost.SINK["vcpu"] + max(
        0.0, sink["seconds_per_message"] - sink["cpu_s_per_message"])
    costs = cost.model({
        "ingest_request_s": http["half_load"]["p50_ms"] / 1000,
        "sink_message_s": sink_message_s,
        "row_bytes": transform["row_bytes"],
        "pubsub_bytes_per_event": ingest["pubsub_bytes_per_event"],
        "event_json_bytes": ingest["request_bytes_per_event"],
    })
    protobuf_costs = cost.model({  # protobuf bodies: their request durations and message sizes
        "ingest_request_s": http["protobuf_half_load"]["p50_ms"] / 1000,
        "sink_message_s": sink_message_s * transform["protobuf_us_per_event"] / transform["us_per_event"],
        "row_bytes": transform["row_bytes"],
        "pubsub_bytes_per_event": ingest["protobuf_pubsub_bytes_per_event"],
        "event_json_bytes": ingest["request_bytes_per_event"],
    })
    results = {
        "ingest_cpu_ratio_to_floor": ingest["ratio_to_floor"],
        "protobuf_ingest_cpu_ratio_to_floor": ingest["protobuf_ratio_to_floor"],
        "http_events_per_s": http["events_per_s"],
        "http_protobuf_events_per_s": http["protobuf"]["events_per_s"],
        "http_p99_ms_at_half_load": http["half_load"]["p99_ms"],
        "http_protobuf_p99_ms_at_half_load": http["protobuf_half_load"]["p99_ms"],
        "sink_us_per_event": transform["us_per_event"],
        "sink_protobuf_us_per_event": transform["protobuf_us_per_event"],
        "e2e_lag_p95_s": pipe["lag"]["p95_s"],
        "cost_per_million_usd": costs["a_batched_gzip_storage_write"]["total"],
        "protobuf_cost_per_million_usd": protobuf_costs["a_batched_gzip_storage_write"]["total"],
        "wire_bytes_per_event": ingest["wire_bytes_per_event"],
        "request_log_cost_per_million_usd": log_costs["busy"]["total"],
        "request_log_idle_cost_per_million_usd": log_costs["idle"]["total"],
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "details": {"ingest": ingest, "sink_transform": transform, "http": http, "pipeline": pipe, "cost": costs,
                    "protobuf_cost": protobuf_costs, "request_log": {**logged, "cost": log_costs},
                    "cold_start": cold, "sink_message_s_deployed": sink_message_s},
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    r, t = ingest["ratio_spread"], transform["us_spread"]
    pr, pt, wb = ingest["protobuf_ratio_spread"], transform["protobuf_us_spread"], ingest["wire_bytes_per_event"]
    ph, phl = http["protobuf"], http["protobuf_half_load"]
    storage = costs["storage_per_million_events_month"]
    rows = [
        ("ingest CPU / orjson.loads floor", f"{r['median']:.2f}x", "<= 4x",
         f"median of {ingest['rounds']} interleaved rounds (min {r['min']:.2f}, max {r['max']:.2f}); floor "
         f"{ingest['us_per_event']['floor_orjson_loads']:.2f} us/ev; ingest path "
         f"{ingest['us_per_event']['ingest_path']:.2f}; json.loads {ingest['us_per_event']['json_loads']:.2f}; "
         f"marshmallow load {ingest['us_per_event']['marshmallow_load']:.1f}"),
        ("protobuf ingest CPU / the floor", f"{pr['median']:.2f}x", "<= 1.5x",
         f"same rounds (min {pr['min']:.2f}, max {pr['max']:.2f}); protobuf ingest path "
         f"{ingest['us_per_event']['protobuf_ingest_path']:.2f} us/ev"),
        ("HTTP ingest throughput", f"{http['events_per_s']:,.0f} ev/s", ">= 35,000",
         f"gunicorn {http['best']} (workers x threads); " + ", ".join(
             f"{k}: {v['events_per_s']:,.0f}" for k, v in http["configs"].items())),
        ("HTTP protobuf throughput", f"{ph['events_per_s']:,.0f} ev/s", ">= 60,000",
         f"gunicorn {http['best']}, the same server and corpus as protobuf bodies"),
        ("HTTP p50 / p99 at half load", f"{http['half_load']['p50_ms']:.0f} / {http['half_load']['p99_ms']:.0f} ms",
         "p99 <= 100 ms", f"{http['half_load']['events_per_s']:,.0f} ev/s offered, client on the same 2 cores; "
         f"protobuf {phl['p50_ms']:.0f} / {phl['p99_ms']:.0f} ms at {phl['events_per_s']:,.0f} ev/s"),
        ("sink transform (JSON envelope)", f"{t['median']:.2f} us/ev", "<= 8 us",
         f"median of rounds (min {t['min']:.2f}, max {t['max']:.2f}); {pipe['sink']['rows_per_s']:,.0f} rows/s "
         "into the BigQuery emulator (Storage Write, one connection)"),
        ("sink transform (protobuf)", f"{pt['median']:.2f} us/ev", "<= 8 us",
         f"same rounds (min {pt['min']:.2f}, max {pt['max']:.2f}); schemaVersion 2 messages"),
        ("end-to-end lag p50 / p95", f"{pipe['lag']['p50_s']:.2f} / {pipe['lag']['p95_s']:.2f} s", "p95 <= 5 s",
         f"{pipe['lag']['seen']}/{pipe['lag']['batches']} batches, accept -> queryable, 100 ms polls"),
        ("cost per million events (a)", f"${costs['a_batched_gzip_storage_write']['total']:.4f}", "<= $0.05",
         f"(b) per-event messages ${costs['b_message_per_event']['total']:.4f}; (c) per-event + BigQuery "
         f"subscription ${costs['c_message_per_event_bq_subscription']['total']:.4f}; Cloud Run billing "
         "(100 ms rounding + request fee)"),
        ("cost per million, protobuf bodies", f"${protobuf_costs['a_batched_gzip_storage_write']['total']:.4f}",
         "-", "design (a) with protobuf requests and schemaVersion 2 messages"),
        ("request log per million events", f"${log_costs['busy']['total']:.4f}", "-",
         f"{logged['busy_rows_per_message']} rows per message; ${log_costs['idle']['total']:.4f} when every row "
         f"travels alone (an idle instance); ingest {logged['ingest_s_per_request'] * 1e6:.1f} us and sink "
         f"{logged['sink_s_per_request'] * 1e6:.1f} us per request; row {logged['row_bytes']} B; "
         f"storage ${log_costs['busy']['storage_month']:.5f}/month"),
        ("bytes per event on the wire", f"{wb['json']:.0f} / {wb['protobuf']:.0f} B", "-",
         f"JSON / protobuf raw; gzip'd (level 5) {wb['json_gzip']:.0f} / {wb['protobuf_gzip']:.0f} B"),
        ("storage per million events/month", f"${storage['active']:.4f}", "-",
         f"{storage['gib']:.3f} GiB; long-term (90 days unmodified) ${storage['long_term']:.4f}"),
        ("corpus", f"{ingest['corpus']['json_bytes_per_event']:.0f} B/ev", "-",
         f"gzip ratio {ingest['corpus']['gzip_ratio']:.1f}x (level 5); Pub/Sub "
         f"{ingest['pubsub_bytes_per_event']:.0f} B/ev; BigQuery row {transform['row_bytes']:.0f} B"),
        ("cold start (import main.py)",
         f"{cold['ingest']['median_s'] * 1000:.0f} / {cold['sink']['median_s'] * 1000:.0f} ms", "-",
         "ingest / sink, median of fresh interpreters"),
    ]
    print(f"\n{'figure':<32}{'measured':<20}{'target':<16}notes")
    for name, value, target, note in rows:
        print(f"{name:<32}{value:<20}{target:<16}{note}")
    m = results["machine"]
    print(f"\nmachine: {m['cores']} cores, {m['cpu_model']}; took {time.monotonic() - started:.0f} s; wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
