"""In-process CPU per event: the ingest path and the sink transform, each against its floor."""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from shared.envelope import Batch, Identity, encode
from shared.ingest.batch import Limits, validate_batch
from shared.ingest.licenses.keys import encode_license, generate_private_key
from shared.ingest.licenses.verifier import Keyring, LicenseVerifier
from shared.ingest.schema import EVENT_SCHEMA
from shared.sink.rows import context_columns, event_batch_columns, event_row, micros
from shared.sink.storage_write import TableWriter
from shared.sink.tables import EVENTS
from shared.tools.generate import generate

BATCH = 500
LIMITS = Limits(max_event_bytes=65536, max_depth=32, max_string_chars=16384, max_future=timedelta(hours=1),
                max_age=timedelta(days=365))
IDENTITY = Identity("bench-instance", "https://bench.example.com", "f" * 64, ("plan:bench",), "prod",
                    "licensed_instance")


def batch_body(seed: int = 1) -> tuple[bytes, list]:
    """A RecordEvents body of 500 realistic events."""
    events = [e for _, e in generate(BATCH, instances=5, days=2, seed=seed)]
    body = {"metadata": {"requestId": "bench", "identifier": {"licensedInstance": {
        "instanceId": "bench-instance", "externalUrl": "https://bench.example.com"}}}, "events": events}
    return orjson.dumps(body), events


def cpu_per_call(fn: Callable[[], object], rounds: int = 15, inner: int = 3) -> float:
    """Median process CPU seconds of one call (the machine is noisy: medians of repeated rounds).

    Objects alive before the measurement are frozen out of the collector, as both functions do at start-up.
    """
    gc.collect()
    gc.freeze()
    fn()
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(inner):
            fn()
        samples.append((time.process_time() - start) / inner)
    return statistics.median(samples)


def ingest_path(body: bytes, verifier: LicenseVerifier, key: str, gzip_level: int) -> tuple[bytes, dict]:
    """What ingest does per request after the HTTP layer: parse, license (cached), validate, build the message."""
    doc = orjson.loads(body)
    verifier.verify(key)
    now = datetime.now(UTC)
    result = validate_batch(doc["events"], LIMITS, now)
    batch = Batch(IDENTITY, doc["metadata"]["requestId"], now.isoformat(), result.accepted)
    return encode(batch, gzip_level, events_json=result.accepted_json)


def measure_ingest(gzip_level: int = 1) -> dict:
    """µs per event for the floor (orjson.loads), json.loads, a marshmallow load, and the ingest path."""
    body, _ = batch_body()
    private = generate_private_key("rsa")
    key = encode_license({"v": 3, "t": [], "u": 1, "e": "2099-01-01T00:00:00Z"}, private)
    verifier = LicenseVerifier(Keyring((private.public_key(),)))
    events = orjson.loads(body)["events"]
    per = {
        "floor_orjson_loads": cpu_per_call(lambda: orjson.loads(body)),
        "json_loads": cpu_per_call(lambda: json.loads(body)),
        "marshmallow_load": cpu_per_call(lambda: EVENT_SCHEMA.load(events, many=True), rounds=5, inner=1),
        "ingest_path": cpu_per_call(lambda: ingest_path(body, verifier, key, gzip_level)),
    }
    data, _ = ingest_path(body, verifier, key, gzip_level)
    us = {k: v / BATCH * 1e6 for k, v in per.items()}
    return {"us_per_event": us, "ratio_to_floor": us["ingest_path"] / us["floor_orjson_loads"],
            "request_bytes_per_event": len(body) / BATCH, "pubsub_bytes_per_event": len(data) / BATCH}


def measure_sink_transform() -> dict:
    """µs per event to turn a published batch into serialized proto rows; bytes per row."""
    _, events = batch_body(seed=2)
    batch = Batch(IDENTITY, "bench", datetime.now(UTC).isoformat(), events)
    writer = TableWriter(None, "p", "d", EVENTS, 10)
    now = datetime.now(UTC)

    def transform() -> list[bytes]:
        shared = writer.serialize(event_batch_columns(context_columns(batch, "1", micros(now)), now))
        return [writer.serialize(event_row(e, now), shared) for e in events]

    seconds = cpu_per_call(transform)
    rows = transform()
    return {"us_per_event": seconds / BATCH * 1e6, "row_bytes": sum(map(len, rows)) / len(rows)}
