"""The sink: one Pub/Sub message (a batch) -> rows in `events`, refused events in `rejected_events`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared import logs
from shared.envelope import PROTOBUF_WIRE, Batch, PoisonMessage
from shared.sink.clients import add_missing_columns, bigquery_client, live_columns, write_client
from shared.sink.config import SinkConfig
from shared.sink.decoding import decode_message
from shared.sink.push import PushedMessage, message_id, pushed_message
from shared.sink.request_rows import request_row
from shared.sink.rows import (
    RowProblem,
    event_batch_columns,
    event_row,
    message_row,
    micros,
    now_utc,
    rejected_row,
)
from shared.sink.storage_write import Backoff, TableWriter
from shared.sink.warehouse.tables import EVENTS, REJECTED, REQUESTS, TABLES


class _Preparation:
    """One run of work in a helper thread; its exception is kept for every delivery that waited on it."""

    def __init__(self, work: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), name="sink-prepare", daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # handed to the waiting deliveries by Sink.prepare()
            self.error = exc


class Sink:
    """Writes batches through the Storage Write API; transient failures raise so Pub/Sub redelivers."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self._ready = False
        self._lock = threading.Lock()
        self._writers: dict[str, TableWriter] = {}
        self._preparing: _Preparation | None = None  # the preparation under way, if any
        logs.configure(version=config.version, environment=config.environment, function="sink")

    def prepare(self, wait_s: float | None = None) -> None:
        """Once per function instance: add the columns a newer release defines, open the writers (deploy.sh
        creates the dataset and tables; the sink creates nothing).

        It runs in a helper thread (the BigQuery clients' own retries last up to 600 s): a delivery waits
        for it at most wait_s (handle(): the larger of BQ_RETRY_BUDGET_SECONDS and BQ_TIMEOUT_SECONDS, the
        appends then get their own budget, both well inside the ack deadline) and then raises TimeoutError,
        so a BigQuery outage on a cold instance fails deliveries in bounded time instead of holding them
        until BigQuery answers. The preparation carries on for a later delivery; after a failure the next
        delivery starts a new one.
        """
        with self._lock:
            if self._ready:
                return
            if self._preparing is None:
                self._preparing = _Preparation(self._prepare_now)
            preparing = self._preparing
        preparing.thread.join(wait_s)
        with self._lock:
            if self._ready:
                return
            if preparing.thread.is_alive():
                raise TimeoutError(f"BigQuery preparation (columns, writers) not done within {wait_s:g}s; "
                                   "it carries on for the next delivery")
            if self._preparing is preparing:
                self._preparing = None  # it failed: the next delivery starts a new one
        raise preparing.error or RuntimeError("BigQuery preparation ended without a result")

    def _prepare_now(self) -> None:
        client = bigquery_client(self.config)
        for table in TABLES:
            add_missing_columns(client, self.config, table)
        writes = write_client(self.config)
        backoff = Backoff(budget_s=self.config.bq_retry_budget_s)
        writers = {}
        for table in TABLES:
            writer = TableWriter(writes, self.config.project, self.config.bq_dataset, table,
                                 self.config.bq_timeout_s, backoff=backoff,
                                 live_columns=lambda t=table: live_columns(writes, self.config, t))
            writer.refresh_schema()
            writers[table.name] = writer
        with self._lock:
            self._writers.update(writers)
            self._ready = True

    def close(self) -> None:
        """Close the writers' AppendRows connections (a later delivery opens new ones)."""
        with self._lock:
            writers = list(self._writers.values())
        for writer in writers:
            writer.close()

    def handle(self, data: object) -> dict:
        """Load one pushed message; return counts. Raises on poison (-> dead letter) or transient errors."""
        started = time.perf_counter()
        try:
            message = pushed_message(data)
            decoded = decode_message(message.data, message.attributes, message.message_id, message.publish_time)
        except PoisonMessage as exc:
            logs.error("poison_message", reasonCode=exc.reason, detail=exc.detail[:500], messageId=message_id(data))
            raise
        try:
            self.prepare(max(self.config.bq_retry_budget_s, self.config.bq_timeout_s))
            if decoded.requests is not None:
                counts = self.load_requests(decoded.requests, message)
                logs.info("requests_loaded", messageId=message.message_id, **counts)
                return counts
            counts = self.load(decoded.batch, decoded.context)
        except Exception as exc:  # logged for the sink-failure metric, then re-raised: Pub/Sub redelivers
            logs.error("sink_failed", reasonCode=type(exc).__name__, detail=str(exc)[:500],
                       messageId=message.message_id)
            raise
        logs.info("batch_loaded", messageId=message.message_id, instanceId=decoded.batch.identity.instance_id,
                  latencyMs=round((time.perf_counter() - started) * 1000, 2), **counts)
        return counts

    def load(self, batch: Batch, context: dict) -> dict:
        """Rejections the transform finds are written first, then the events, then rows BigQuery refused.

        A redelivery after a failure therefore never writes a batch's good rows twice unless BigQuery
        itself refused some row of it and the rejected_events write then failed after its retries. All
        retries of one delivery share one deadline (BQ_RETRY_BUDGET_SECONDS), well inside the ack deadline.
        An event whose row cannot be built goes to rejected_events alone; the rest of its message lands.
        """
        deadline = time.monotonic() + self.config.bq_retry_budget_s
        now = now_utc()
        message_id = context["message_id"]
        events = self._writers[EVENTS.name]
        redacted = batch.redacted or [[]] * len(batch.events)

        shared_for: dict[type, bytes] = {}  # the batch's shared columns, serialized once per writer schema
        to_row = message_row if batch.wire == PROTOBUF_WIRE else event_row

        def row(index: int) -> bytes:
            cls = events.message_class
            if cls not in shared_for:
                shared_for[cls] = events.serialize(event_batch_columns(context, now))
            return events.serialize(to_row(batch.events[index], now, redacted[index]), shared_for[cls])

        indexes: list[int] = []
        serialized: list[bytes] = []
        rejects: list[dict] = []
        for index, event in enumerate(batch.events):
            try:
                serialized.append(row(index))
                indexes.append(index)
            except RowProblem as exc:
                rejects.append(rejected_row(event, index, exc.reason, exc.detail, context, now, redacted[index]))
            except (TypeError, ValueError) as exc:
                rejects.append(rejected_row(event, index, "invalid_value", str(exc), context, now, redacted[index]))
            except Exception as exc:  # any other failure of one event's row is that event's, never its message's
                rejects.append(rejected_row(event, index, "row_build_failed", f"{type(exc).__name__}: {exc}", context,
                                            now, redacted[index]))
        self._reject(rejects, message_id, deadline)

        refused = [rejected_row(batch.events[i], i, "bigquery_row_error", f"{e.code}: {e.message}", context, now,
                                redacted[i]) for e in events.append(serialized, deadline, lambda p: row(indexes[p]))
                   for i in (indexes[e.index],)]
        self._reject(refused, message_id, deadline)
        total = len(rejects) + len(refused)
        return {"events": len(batch.events), "inserted": len(batch.events) - total, "rejected": total}

    def load_requests(self, records: list[dict], message: PushedMessage) -> dict:
        """Request-log rows; a record this release cannot write is logged and skipped (the log is a record of
        requests, not data whose loss loses an event), a transient failure raises for a redelivery."""
        deadline = time.monotonic() + self.config.bq_retry_budget_s
        writer, now = self._writers[REQUESTS.name], micros(now_utc())
        rows, serialized, skipped = [], [], 0
        for record in records:
            try:
                row = request_row(record, now)
                serialized.append(writer.serialize(row))
                rows.append(row)
            except (TypeError, ValueError) as exc:
                skipped += 1
                logs.warning("request_row_invalid", detail=str(exc)[:300], messageId=message.message_id)
        refused = writer.append(serialized, deadline, lambda i: writer.serialize(rows[i]))
        for error in refused:
            logs.warning("request_row_invalid", detail=f"{error.code}: {error.message}"[:300],
                         messageId=message.message_id)
        return {"requests": len(records), "inserted": len(rows) - len(refused), "skipped": skipped + len(refused)}

    def _reject(self, rows: list[dict], message_id: str, deadline: float) -> None:
        """Write rejected_events rows (every column a plain string or number: BigQuery has no reason to refuse)."""
        if not rows:
            return
        writer = self._writers[REJECTED.name]
        refused = writer.append([writer.serialize(r) for r in rows], deadline, lambda i: writer.serialize(rows[i]))
        if refused:
            raise RuntimeError(f"rejected_events refused {len(refused)} rows: {refused[0].message}")
        for reason in sorted({r["reason"] for r in rows}):
            logs.warning("events_rejected", reasonCode=reason, messageId=message_id,
                         count=sum(r["reason"] == reason for r in rows))
