"""HTTP ingest throughput and latency: the client side against functions-framework + the Pub/Sub emulator."""

from __future__ import annotations

import gzip
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson
import requests

from bench.cpu import batch_body, protobuf_body
from devtools.emulators import start_pubsub
from devtools.functions import start_function
from devtools.procs import Service
from devtools.topology import clients, ensure_topic
from tools.signing import encode_license, generate_private_key, public_key_line

TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(leader: int) -> float:
    """User+system CPU of every process in the leader's process group (gunicorn master and workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _run(url: str, headers: dict, bodies: list[bytes], threads: int, seconds: float, interval: float | None) -> dict:
    """`threads` senders for `seconds`; closed loop, or paced at one request per `interval` each."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def sender(offset: int) -> None:
        with requests.Session() as http:
            n = offset
            next_at = time.monotonic()
            while time.monotonic() < stop:
                if interval:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_at += interval
                started = time.perf_counter()
                resp = http.post(url, data=bodies[n % len(bodies)], headers=headers, timeout=30)
                took = time.perf_counter() - started
                with lock:
                    if resp.status_code == 200 and not resp.json()["failedEvents"]:
                        latencies.append(took)
                    else:
                        errors[0] += 1
                n += 1

    workers = [threading.Thread(target=sender, args=(i,)) for i in range(threads)]
    began = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    return {"requests": len(latencies), "errors": errors[0], "seconds": elapsed,
            "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else None}


def measure(configs: tuple[tuple[int, int], ...] = ((1, 8), (2, 4), (2, 8)), seconds: float = 8.0) -> dict:
    """Saturation throughput per gunicorn (workers, threads), then p50/p99 at half the best throughput."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    private = generate_private_key("rsa")
    (work / "trusted.pub").write_text(public_key_line(private.public_key()) + "\n")
    key = encode_license({"v": 3, "t": [], "u": 1, "e": "2099-01-01T00:00:00Z"}, private)
    bodies = [gzip.compress(batch_body(seed)[0], 5) for seed in range(8)]
    proto_bodies = [gzip.compress(protobuf_body(seed), 5) for seed in range(8)]
    events_per_request = len(orjson.loads(gzip.decompress(bodies[0]))["events"])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
    proto_headers = {**headers, "Content-Type": "application/x-protobuf"}
    pubsub = start_pubsub()
    services: list[Service] = [pubsub]
    results: dict = {"events_per_request": events_per_request, "configs": {}}
    try:
        publisher, _ = clients(pubsub.host)
        ensure_topic(publisher, "bench", "events")
        env = {"PUBSUB_EMULATOR_HOST": pubsub.host, "GOOGLE_CLOUD_PROJECT": "bench", "TELEMETRY_ENV": "prod",
               "PUBSUB_TOPIC": "events", "TRUSTED_LICENSE_KEYS_FILE": str(work / "trusted.pub"),
               "QUOTA_EVENTS_PER_SECOND": "10000000", "QUOTA_BURST_EVENTS": "100000000"}
        best = None
        for workers, threads in configs:
            server = start_function("ingest", env, workers=workers, threads=threads)
            services.append(server)
            url = f"{server.url}/v1/events"
            _run(url, headers, bodies, 2, 1.0, None)  # warm up
            cpu0 = group_cpu_seconds(server.proc.pid)
            run = _run(url, headers, bodies, 8, seconds, None)
            run["server_cpu_s"] = group_cpu_seconds(server.proc.pid) - cpu0
            run["events_per_s"] = run["requests"] * events_per_request / run["seconds"]
            run["server_cpu_us_per_event"] = run["server_cpu_s"] / max(1, run["requests"] * events_per_request) * 1e6
            results["configs"][f"{workers}x{threads}"] = run
            if best is None or run["events_per_s"] > best[1]["events_per_s"]:
                best = ((workers, threads), run, server)
            else:
                server.stop()
        (workers, threads), run, server = best
        url = f"{server.url}/v1/events"
        proto = _run(url, proto_headers, proto_bodies, 8, seconds, None)  # the same server, protobuf bodies
        proto["events_per_s"] = proto["requests"] * events_per_request / proto["seconds"]

        def half_load(saturated: dict, hdrs: dict, payloads: list[bytes]) -> dict:
            half = _run(url, hdrs, payloads, 4, seconds, 4 / (saturated["requests"] / saturated["seconds"] / 2))
            half["events_per_s"] = half["requests"] * events_per_request / half["seconds"]
            return half

        results.update(best=f"{workers}x{threads}", events_per_s=run["events_per_s"],
                       half_load=half_load(run, headers, bodies), protobuf=proto,
                       protobuf_half_load=half_load(proto, proto_headers, proto_bodies),
                       server_cpu_us_per_event=run["server_cpu_us_per_event"])
    finally:
        for service in reversed(services):
            service.stop()
    return results
