"""devtools/bqemulator_serialized.py: the launcher's changes to bqemulator, on a running emulator."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.cpu import IDENTITY, batch_body
from devtools.pipeline import create_warehouse
from devtools.procs import group_rss_bytes
from shared.envelope import Batch
from shared.sink.clients import write_client
from shared.sink.config import SinkConfig
from shared.sink.request_rows import request_row
from shared.sink.rows import context_columns, event_batch_columns, event_row, micros
from shared.sink.storage_write import TableWriter
from shared.sink.warehouse.tables import EVENTS, REQUESTS

APPENDS = 40


def test_appends_do_not_copy_the_table(bigquery_emulator, bigquery_env):
    """Unpatched, bqemulator copies the whole table after every append (time travel): 40 appends of 500 rows
    took it from ~230 MB to ~750 MB here, growing faster with every append. Patched, the 20,000 rows cost tens
    of MB, and the second half of the appends no more than the first."""
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    writer = TableWriter(write_client(config), config.project, config.bq_dataset, EVENTS, config.bq_timeout_s)
    payloads = [batch_body(seed=200 + i)[1] for i in range(4)]

    def rss_mb() -> float:
        return sum(group_rss_bytes(bigquery_emulator.service.proc.pid).values()) / 2**20

    sizes = [rss_mb()]
    for number in range(APPENDS):
        events = payloads[number % len(payloads)]
        now = datetime.now(UTC)
        context = context_columns(Batch(IDENTITY, f"r-{number}", now.isoformat(), events), f"r-{number}", micros(now))
        shared = writer.serialize(event_batch_columns(context, now))
        assert not writer.append([writer.serialize(event_row(e, now), shared) for e in events])
        if number + 1 in (APPENDS // 2, APPENDS):
            sizes.append(rss_mb())
    writer.close()
    first, second = sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert sizes[2] - sizes[0] < 150, f"the emulator grew {sizes[2] - sizes[0]:.0f} MB for 20,000 rows: {sizes}"
    assert second < max(first, 0) + 50, f"appends cost more as the table grew: {sizes}"


CONNECTIONS = 12  # more than asyncio's default pool of min(32, cores + 4) threads on a small machine


def test_many_append_connections_stay_open_at_once(bigquery_env):
    """Unpatched, each open AppendRows connection holds one of 6 threads (2 cores): the seventh waited until
    another closed. Patched, twelve connections, each kept open, all append."""
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    client = write_client(config)
    writers = [TableWriter(client, config.project, config.bq_dataset, REQUESTS, config.bq_timeout_s)
               for _ in range(CONNECTIONS)]
    try:
        for number, writer in enumerate(writers):
            row = request_row({"record_id": f"c-{number}", "received_at": micros(datetime.now(UTC)),
                               "outcome": "accepted"}, micros(datetime.now(UTC)))
            assert writer.append([writer.serialize(row)]) == []
        assert sum(w.connections_opened for w in writers) == CONNECTIONS
    finally:
        for writer in writers:
            writer.close()
