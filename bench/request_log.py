"""What the request log costs: its work per request in ingest and in the sink, and the bytes it moves.

In process, on realistic rows (a 500-event request, some refused and redacted): ingest builds the record and
encodes it into a message of ROWS_PER_MESSAGE rows; the sink decodes the message, makes the rows and
serializes them for the Storage Write API. The cost model (bench/cost.py) prices it per million events.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

from shared.envelope import decode_requests, encode_requests
from shared.ingest.requestlog import RequestFacts, request_record
from shared.sink.request_rows import request_row
from shared.sink.storage_write import TableWriter
from shared.sink.warehouse.tables import REQUESTS

BUSY_ROWS_PER_MESSAGE = 100  # a busy instance: the rows of a second's requests share one message
ROUNDS, RECORDS = 7, 2_000


def facts() -> RequestFacts:
    """What a typical accepted request leaves."""
    return RequestFacts(format="json", content_encoding="gzip", wire_bytes=120_000, body_bytes=390_000,
                        request_id="4f0c2a0e-8a1d-4a61-9d1c-2d2a6f3b9e11", caller_kind="licensed_instance",
                        instance_id="6a3c1b2e-4f5d-4e6f-8a9b-0c1d2e3f4a5b", license_fingerprint="f" * 64,
                        events=500, accepted=498, refused=Counter(invalid_event=2),
                        redacted=Counter({"parameters.privateMetadata": 3}), warnings=Counter(timestamp_truncated=1),
                        earliest=1_796_000_000_000_000, latest=1_796_000_300_000_000)


def _round(writer: TableWriter) -> tuple[float, float, int, int]:
    """Seconds per request in ingest and in the sink, serialized row bytes, gzip'd message bytes per row."""
    started = time.perf_counter()
    records = [request_record("prod", facts(), 200, None, 1_796_000_400_000_000, 12.5, "sourcegraph/6.0")
               for _ in range(RECORDS)]
    messages = [encode_requests(records[i:i + BUSY_ROWS_PER_MESSAGE])
                for i in range(0, RECORDS, BUSY_ROWS_PER_MESSAGE)]
    ingest_s = (time.perf_counter() - started) / RECORDS
    started = time.perf_counter()
    rows = [writer.serialize(request_row(r, 1_796_000_401_000_000)) for data, attributes in messages
            for r in decode_requests(data, attributes)]
    sink_s = (time.perf_counter() - started) / RECORDS
    return ingest_s, sink_s, round(statistics.mean(map(len, rows))), round(
        sum(len(data) for data, _ in messages) / RECORDS)


def measure() -> dict:
    """Medians of ROUNDS rounds."""
    writer = TableWriter(None, "bench", "bench", REQUESTS, 1.0)  # serializes only: no client is used
    rounds = [_round(writer) for _ in range(ROUNDS)]
    ingest_s, sink_s, row_bytes, message_bytes = (statistics.median(r[i] for r in rounds) for i in range(4))
    single, _ = encode_requests([request_record("prod", facts(), 200, None, 1, 1.0, "sourcegraph/6.0")])
    return {"ingest_s_per_request": ingest_s, "sink_s_per_request": sink_s, "row_bytes": row_bytes,
            "message_bytes_per_row": message_bytes, "single_row_message_bytes": len(single),
            "busy_rows_per_message": BUSY_ROWS_PER_MESSAGE, "rounds": ROUNDS}
