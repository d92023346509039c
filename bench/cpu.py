"""In-process CPU per event: the ingest path and the sink transform, each against its floor."""

from __future__ import annotations

import gc
import gzip
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from bench import corpus
from shared.envelope import Batch, Identity, decode, encode, encode_protobuf
from shared.ingest.batch import Limits, validate_batch
from shared.ingest.licenses.verifier import Keyring, LicenseVerifier
from shared.ingest.policy import PrivacyPolicy
from shared.ingest.protobatch import validate_messages
from shared.ingest.protobody import parse_protobuf
from shared.ingest.schema import EVENT_SCHEMA
from shared.sink.rows import context_columns, event_batch_columns, event_row, message_row, micros
from shared.sink.storage_write import TableWriter
from shared.sink.warehouse.tables import EVENTS
from tools import wire
from tools.signing import encode_license, generate_private_key

BATCH = 500
LIMITS = Limits(max_event_bytes=65536, max_depth=32, max_string_chars=16384, max_future=timedelta(hours=1),
                max_age=timedelta(days=365))
IDENTITY = Identity("bench-instance", "https://bench.example.com", "f" * 64, ("plan:bench",), "prod",
                    "licensed_instance")


ROUNDS = 7  # interleaved rounds per figure; each figure is their median, printed with min and max


METADATA = {"requestId": "bench", "identifier": {"licensedInstance": {
    "instanceId": "bench-instance", "externalUrl": "https://bench.example.com"}}}
POLICY = PrivacyPolicy()  # the default: no private metadata or marketing tracking kept (what most events meet)


def batch_body(seed: int = 1) -> tuple[bytes, list]:
    """A RecordEvents body of 500 events from the realistic corpus."""
    events = corpus.events(BATCH, seed=seed)
    return orjson.dumps({"metadata": METADATA, "events": events}), events


def protobuf_body(seed: int = 1) -> bytes:
    """The same events as batch_body(seed) in a RecordEventsBody, built by the protobuf library."""
    return wire.encode_body(METADATA, [wire.event_message(e) for e in corpus.events(BATCH, seed=seed)])


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
    """What ingest does per request after the HTTP layer: parse, license (cached), validate with the privacy
    policy, build the message."""
    doc = orjson.loads(body)
    verifier.verify(key)
    now = datetime.now(UTC)
    result = validate_batch(doc["events"], LIMITS, now, lambda e: POLICY.apply(e, IDENTITY.instance_id))
    batch = Batch(IDENTITY, doc["metadata"]["requestId"], now.isoformat(), result.accepted, result.redacted)
    return encode(batch, gzip_level, events_json=result.accepted_json)


def protobuf_ingest_path(body: bytes, verifier: LicenseVerifier, key: str, gzip_level: int) -> tuple[bytes, dict]:
    """ingest_path for a protobuf body: framing, parse, license, checks and policy on the messages, message."""
    parsed = parse_protobuf(body, BATCH)
    verifier.verify(key)
    now = datetime.now(UTC)
    result = validate_messages(parsed.events, parsed.sizes, LIMITS, now,
                               lambda e: POLICY.apply_message(e, IDENTITY.instance_id))
    parsed.body.ClearField("metadata")
    batch = Batch(IDENTITY, parsed.request_id, now.isoformat(), parsed.events, result.redacted)
    return encode_protobuf(batch, parsed.body.SerializeToString(), gzip_level)


def measure_ingest(gzip_level: int = 1) -> dict:
    """µs per event for the floor (orjson.loads), json.loads, a marshmallow load, and the ingest path.

    The ratio ingest path / floor is taken in each interleaved round; its median, min and max are reported.
    """
    body, sample = batch_body()
    proto = protobuf_body()
    private = generate_private_key("rsa")
    key = encode_license({"v": 3, "t": [], "u": 1, "e": "2099-01-01T00:00:00Z"}, private)
    verifier = LicenseVerifier(Keyring((private.public_key(),)))
    events = orjson.loads(body)["events"]
    rounds = interleaved({
        "floor_orjson_loads": lambda: orjson.loads(body),
        "json_loads": lambda: json.loads(body),
        "ingest_path": lambda: ingest_path(body, verifier, key, gzip_level),
        "protobuf_ingest_path": lambda: protobuf_ingest_path(proto, verifier, key, gzip_level),
    })
    marshmallow = interleaved({"m": lambda: EVENT_SCHEMA.load(events, many=True)}, rounds=3, inner=1)
    data, _ = ingest_path(body, verifier, key, gzip_level)
    proto_data, _ = protobuf_ingest_path(proto, verifier, key, gzip_level)
    us = {k: statistics.median(r[k] for r in rounds) / BATCH * 1e6 for k in rounds[0]}
    us["marshmallow_load"] = statistics.median(r["m"] for r in marshmallow) / BATCH * 1e6
    ratio = spread([r["ingest_path"] / r["floor_orjson_loads"] for r in rounds])
    proto_ratio = spread([r["protobuf_ingest_path"] / r["floor_orjson_loads"] for r in rounds])
    return {"us_per_event": us, "ratio_to_floor": ratio["median"], "ratio_spread": ratio, "rounds": len(rounds),
            "protobuf_ratio_to_floor": proto_ratio["median"], "protobuf_ratio_spread": proto_ratio,
            "request_bytes_per_event": len(body) / BATCH, "pubsub_bytes_per_event": len(data) / BATCH,
            "protobuf_pubsub_bytes_per_event": len(proto_data) / BATCH,
            "wire_bytes_per_event": {"json": len(body) / BATCH, "json_gzip": len(gzip.compress(body, 5)) / BATCH,
                                     "protobuf": len(proto) / BATCH,
                                     "protobuf_gzip": len(gzip.compress(proto, 5)) / BATCH},
            "corpus": corpus.describe(sample)}


def published(seed: int) -> tuple[Batch, Batch]:
    """The messages ingest publishes for one corpus batch, decoded as the sink decodes them: JSON and protobuf."""
    private = generate_private_key("ed25519")
    key = encode_license({"v": 3, "t": [], "u": 1, "e": "2099-01-01T00:00:00Z"}, private)
    verifier = LicenseVerifier(Keyring((private.public_key(),)))
    json_message = ingest_path(batch_body(seed)[0], verifier, key, 1)
    proto_message = protobuf_ingest_path(protobuf_body(seed), verifier, key, 1)
    return decode(*json_message), decode(*proto_message)


def measure_sink_transform() -> dict:
    """µs per event to turn a decoded batch into serialized rows (median of interleaved rounds), for the JSON
    and the protobuf envelope; bytes per row."""
    json_batch, proto_batch = published(seed=2)
    writer = TableWriter(None, "p", "d", EVENTS, 10)
    now = datetime.now(UTC)

    def transform(batch: Batch, to_row: Callable) -> list[bytes]:
        shared = writer.serialize(event_batch_columns(context_columns(batch, "1", micros(now)), now))
        redacted = batch.redacted or [[]] * len(batch.events)
        return [writer.serialize(to_row(e, now, r), shared) for e, r in zip(batch.events, redacted, strict=True)]

    rounds = interleaved({"json": lambda: transform(json_batch, event_row),
                          "protobuf": lambda: transform(proto_batch, message_row)})
    per_event = spread([r["json"] / BATCH * 1e6 for r in rounds])
    proto_per_event = spread([r["protobuf"] / BATCH * 1e6 for r in rounds])
    rows = transform(json_batch, event_row)  # the same values as the protobuf rows (tests/unit/sink/test_rows.py);
    # not the same bytes: a JSON integer stays an integer in `metadata`, a protobuf double is written as 1.0
    return {"us_per_event": per_event["median"], "us_spread": per_event,
            "protobuf_us_per_event": proto_per_event["median"], "protobuf_us_spread": proto_per_event,
            "row_bytes": sum(map(len, rows)) / len(rows)}
