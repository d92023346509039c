"""In-process CPU per event: the ingest path and the sink transform, each against its floor."""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from bench import corpus
from shared.envelope import Batch, Identity, encode
from shared.ingest.batch import Limits, validate_batch
from shared.ingest.licenses.verifier import Keyring, LicenseVerifier
from shared.ingest.schema import EVENT_SCHEMA
from shared.sink.rows import context_columns, event_batch_columns, event_row, micros
from shared.sink.storage_write import TableWriter
from shared.sink.warehouse.tables import EVENTS
from tools.signing import encode_license, generate_private_key

BATCH = 500
LIMITS = Limits(max_event_bytes=65536, max_depth=32, max_string_chars=16384, max_future=timedelta(hours=1),
                max_age=timedelta(days=365))
IDENTITY = Identity("bench-instance", "https://bench.example.com", "f" * 64, ("plan:bench",), "prod",
                    "licensed_instance")


ROUNDS = 7  # interleaved rounds per figure; each figure is their median, printed with min and max


def batch_body(seed: int = 1) -> tuple[bytes, list]:
    """A RecordEvents body of 500 events from the realistic corpus."""
    events = corpus.events(BATCH, seed=seed)
    body = {"metadata": {"requestId": "bench", "identifier": {"licensedInstance": {
        "instanceId": "bench-instance", "externalUrl": "https://bench.example.com"}}}, "events": events}
    return orjson.dumps(body), events


def spread(samples: list[float]) -> dict:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def interleaved(fns: dict[str, Callable[[], object]], rounds: int = ROUNDS, inner: int = 3) -> list[dict[str, float]]:
    """Process CPU seconds per call of each fn, measured round by round (all fns in every round).

    Interleaving puts each figure and its floor under the same machine conditions; a noisy moment then
    moves both. Objects alive before the measurement are frozen out of the collector, as the functions do.
    """
    gc.collect()
    gc.freeze()
    for fn in fns.values():
        fn()
    results = []
    for _ in range(rounds):
        row = {}
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(inner):
                fn()
            row[name] = (time.process_time() - start) / inner
        results.append(row)
    return results


def ingest_path(body: bytes, verifier: LicenseVerifier, key: str, gzip_level: int) -> tuple[bytes, dict]:
    """What ingest does per request after the HTTP layer: parse, license (cached), validate, build the message."""
    doc = orjson.loads(body)
    verifier.verify(key)
    now = datetime.now(UTC)
    result = validate_batch(doc["events"], LIMITS, now)
    batch = Batch(IDENTITY, doc["metadata"]["requestId"], now.isoformat(), result.accepted)
    return encode(batch, gzip_level, events_json=result.accepted_json)


def measure_ingest(gzip_level: int = 1) -> dict:
    """µs per event for the floor (orjson.loads), json.loads, a marshmallow load, and the ingest path.

    The ratio ingest path / floor is taken in each interleaved round; its median, min and max are reported.
    """
    body, sample = batch_body()
    private = generate_private_key("rsa")
    key = encode_license({"v": 3, "t": [], "u": 1, "e": "2099-01-01T00:00:00Z"}, private)
    verifier = LicenseVerifier(Keyring((private.public_key(),)))
    events = orjson.loads(body)["events"]
    rounds = interleaved({
        "floor_orjson_loads": lambda: orjson.loads(body),
        "json_loads": lambda: json.loads(body),
        "ingest_path": lambda: ingest_path(body, verifier, key, gzip_level),
    })
    marshmallow = interleaved({"m": lambda: EVENT_SCHEMA.load(events, many=True)}, rounds=3, inner=1)
    data, _ = ingest_path(body, verifier, key, gzip_level)
    us = {k: statistics.median(r[k] for r in rounds) / BATCH * 1e6 for k in rounds[0]}
    us["marshmallow_load"] = statistics.median(r["m"] for r in marshmallow) / BATCH * 1e6
    ratio = spread([r["ingest_path"] / r["floor_orjson_loads"] for r in rounds])
    return {"us_per_event": us, "ratio_to_floor": ratio["median"], "ratio_spread": ratio, "rounds": len(rounds),
            "request_bytes_per_event": len(body) / BATCH, "pubsub_bytes_per_event": len(data) / BATCH,
            "corpus": corpus.describe(sample)}


def measure_sink_transform() -> dict:
    """µs per event to turn a published batch into serialized proto rows (median of rounds); bytes per row."""
    _, events = batch_body(seed=2)
    batch = Batch(IDENTITY, "bench", datetime.now(UTC).isoformat(), events)
    writer = TableWriter(None, "p", "d", EVENTS, 10)
    now = datetime.now(UTC)

    def transform() -> list[bytes]:
        shared = writer.serialize(event_batch_columns(context_columns(batch, "1", micros(now)), now))
        return [writer.serialize(event_row(e, now), shared) for e in events]

    per_event = spread([r["t"] / BATCH * 1e6 for r in interleaved({"t": transform})])
    rows = transform()
    return {"us_per_event": per_event["median"], "us_spread": per_event,
            "row_bytes": sum(map(len, rows)) / len(rows)}
