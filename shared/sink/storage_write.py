"""BigQuery Storage Write API: one long-lived default-stream connection per table, as real BigQuery wants it.

- The connection (google-cloud-bigquery-storage's `AppendRowsStream`) is opened on the first append and
  reused by every later message of this function instance; the library reopens it when the service
  closes it (idle timeout, errors).
- Transient failures (UNAVAILABLE, INTERNAL, ABORTED, RESOURCE_EXHAUSTED, a closed or unopenable
  connection) are retried inside the invocation with exponential backoff and jitter, within a budget
  well inside the subscription's ack deadline; only then does the delivery fail.
- A request with a bad row writes nothing, and its `row_errors` may be incomplete: named rows are
  removed and the rest appended again; an error that names no row is narrowed down by halving.
- The writer schema is the live table's columns (as the Write API sees them) within the definition:
  naming a column the service does not see yet fails the whole request.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.cloud.bigquery_storage_v1 import exceptions as bqstorage_exceptions
from google.cloud.bigquery_storage_v1.writer import AppendRowsFuture, AppendRowsStream
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from shared import logs
from shared.sink.warehouse.columns import Column, TableDef

_F = descriptor_pb2.FieldDescriptorProto
PROTO_TYPES = {  # TIMESTAMP: int64 microseconds since the epoch; JSON: a string holding JSON
    "STRING": _F.TYPE_STRING, "INT64": _F.TYPE_INT64, "FLOAT64": _F.TYPE_DOUBLE, "BOOL": _F.TYPE_BOOL,
    "TIMESTAMP": _F.TYPE_INT64, "JSON": _F.TYPE_STRING,
}
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # AppendRows accepts up to 10 MB per request
# Worth retrying: the service's own transient codes, and a connection that closed or would not open.
TRANSIENT = (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.Aborted, gexc.ResourceExhausted,
             gexc.DeadlineExceeded, gexc.Unknown, bqstorage_exceptions.StreamClosedError, TimeoutError)


# Causes that a retry cannot mend: the sink's account lacks a right, the table is gone, the request is wrong.
PERMANENT = (gexc.PermissionDenied, gexc.Unauthenticated, gexc.NotFound, gexc.FailedPrecondition,
             gexc.InvalidArgument)
# google-cloud-bigquery-storage replaces the first error of a stream that fails to open with this Unknown.
OPEN_FAILED = "There was a problem opening the stream"

UNNAMED = "INVALID_ARGUMENT"  # the code given to a row found bad by halving (the service named no row)
# How often a response future is checked: the library's default waits a second before its first look.
ANSWER_POLLING = DEFAULT_POLLING.with_delay(initial=0.001, maximum=0.02, multiplier=2.0)


@dataclass(frozen=True)
class RowError:
    """A row BigQuery refused, by its index in the rows given to append()."""

    index: int
    code: str
    message: str


class SchemaChanged(Exception):
    """The table's columns differ from the writer's: the writer refreshed itself; serialize the rows again."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, within a total budget."""

    budget_s: float = 60.0
    initial_s: float = 0.2
    maximum_s: float = 8.0


def default_stream(project: str, dataset: str, table: str) -> str:
    """The table's default write stream (at-least-once, no stream to create or commit)."""
    return f"projects/{project}/datasets/{dataset}/tables/{table}/streams/_default"


def descriptor_for(table: TableDef, names: Collection[str]) -> descriptor_pb2.DescriptorProto:
    """The proto2 message of rows with these columns of the table (None leaves a field unset: NULL).

    Field numbers follow the definition's order, so they never change when a column is left out.
    """
    descriptor = descriptor_pb2.DescriptorProto(name="Row")
    for number, column in enumerate(table.columns, 1):
        if column.name not in names:
            continue
        label = _F.LABEL_REPEATED if column.mode == "REPEATED" else _F.LABEL_OPTIONAL
        descriptor.field.add(name=column.name, number=number, type=PROTO_TYPES[column.type], label=label)
    return descriptor


def _message_class(descriptor: descriptor_pb2.DescriptorProto, name: str) -> type:
    file_proto = descriptor_pb2.FileDescriptorProto(name=f"{name}.proto", package="gateway", syntax="proto2")
    file_proto.message_type.add().CopyFrom(descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("gateway.Row"))


def _close_quietly(stream: AppendRowsStream) -> None:
    """Close a connection that may already be closed or broken."""
    if stream.is_active:
        with contextlib.suppress(bqstorage_exceptions.StreamClosedError, gexc.GoogleAPIError):
            stream.close()


def _schema_mismatch(exc: BaseException) -> bool:
    text = str(exc).upper()
    return "SCHEMA_MISMATCH" in text or "EXTRA FIELD" in text


class TableWriter:
    """Appends serialized rows to one table's default stream over a connection kept for the process."""

    def __init__(self, client: BigQueryWriteClient, project: str, dataset: str, table: TableDef, timeout_s: float,
                 *, live_columns: Callable[[], Collection[str]] | None = None, backoff: Backoff = Backoff(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._timeout = timeout_s
        self._table = table
        self._live_columns = live_columns
        self._backoff = backoff
        self._sleep = sleep
        self._lock = threading.Lock()  # one send at a time keeps requests and response futures in order
        self._stream: AppendRowsStream | None = None
        self._opening: threading.Thread | None = None  # an abandoned connection still opening
        self.stream = default_stream(project, dataset, table.name)
        self.connections_opened = 0
        self._use_columns(table.columns)

    def _use_columns(self, columns: Collection[Column]) -> None:
        self.columns = tuple(columns)
        names = frozenset(c.name for c in self.columns)
        self.descriptor = descriptor_for(self._table, names)
        self.message_class = _message_class(self.descriptor, self._table.name)
        self._names = None if len(names) == len(self._table.columns) else names

    def refresh_schema(self) -> bool:
        """Write only the columns the service sees (live ∩ definition); True if that changed the writer."""
        if self._live_columns is None:
            return False
        live = set(self._live_columns())
        columns = tuple(c for c in self._table.columns if c.name in live)
        if columns == self.columns:
            return False
        missing = [c.name for c in self._table.columns if c.name not in live]
        logs.warning("writer_schema_changed", table=self._table.name, notYetVisible=missing)
        with self._lock:
            self._use_columns(columns)
            self._close_locked()
        return True

    def serialize(self, row: dict, shared: bytes = b"") -> bytes:
        """One row as proto bytes (None leaves a field unset, i.e. NULL).

        `shared` is the serialized form of columns every row of a batch has in common: protobuf
        concatenation is a merge, so they are serialized once per batch instead of once per row.
        """
        if self._names is not None:
            row = {k: v for k, v in row.items() if k in self._names}
        return self.message_class(**row).SerializeToString() + shared

    def append(self, rows: list[bytes], deadline: float | None = None,
               reserialize: Callable[[int], bytes] | None = None) -> list[RowError]:
        """Append rows in requests under the size cap; every row not returned as an error is written.

        deadline (time.monotonic) bounds the retries of the whole delivery. reserialize(i) serializes
        row i again after the writer's columns changed; without it the change is raised as SchemaChanged.
        """
        rows = list(rows)
        deadline = deadline or time.monotonic() + self._backoff.budget_s
        errors: list[RowError] = []
        start = 0
        while start < len(rows):
            end, size = start, 0
            while end < len(rows) and (end == start or size + len(rows[end]) < MAX_REQUEST_BYTES):
                size += len(rows[end])
                end += 1
            chunk = self._append_clean(list(range(start, end)), rows, deadline, reserialize)
            if end - start > 1 and len(chunk) == end - start and all(e.code == UNNAMED for e in chunk):
                raise RuntimeError(f"every row of a request refused without a row error: {chunk[0].message}")
            errors += chunk
            start = end
        return errors

    def _append_clean(self, indexes: list[int], rows: list[bytes], deadline: float,
                      reserialize: Callable[[int], bytes] | None) -> list[RowError]:
        """Append rows[i] for i in indexes; remove refused rows and append the rest until none is refused."""
        refused: list[RowError] = []
        pending = indexes
        while pending:
            try:
                named, unnamed = self._append_once([rows[i] for i in pending], deadline)
            except SchemaChanged:
                if reserialize is None:
                    raise
                for i in pending:  # nothing of this request was written: the same rows, the new columns
                    rows[i] = reserialize(i)
                continue
            if not named and unnamed is None:
                return refused
            if named:  # possibly incomplete: drop the named rows, try the rest again
                bad = {pending[e.index] for e in named}
                refused += [RowError(pending[e.index], e.code, e.message) for e in named]
                pending = [i for i in pending if i not in bad]
            elif len(pending) == 1:  # an unnamed refusal of a single row: that row is the bad one
                refused.append(RowError(pending[0], UNNAMED, unnamed))
                return refused
            else:  # refused without naming a row: halve until the bad rows are found
                half = len(pending) // 2
                return (refused + self._append_clean(pending[:half], rows, deadline, reserialize)
                        + self._append_clean(pending[half:], rows, deadline, reserialize))
        return refused

    def _append_once(self, rows: list[bytes], deadline: float) -> tuple[list[RowError], str | None]:
        """One request, retried while transient: (named row errors, message of an unnamed refusal or None)."""
        attempt = 0
        while True:
            try:
                return self._send(rows)
            except TRANSIENT as exc:
                delay = random.uniform(0, min(self._backoff.maximum_s, self._backoff.initial_s * 2 ** attempt))
                if time.monotonic() + delay > deadline:
                    raise
                logs.warning("append_retry", table=self._table.name, attempt=attempt + 1,
                             reasonCode=type(exc).__name__, detail=str(exc)[:300])
                self._sleep(delay)
                attempt += 1

    def _send(self, rows: list[bytes]) -> tuple[list[RowError], str | None]:
        """One AppendRows request: row errors, or the message of a refusal naming no row (InvalidArgument).

        Any other failure (permission, missing table, a precondition) is raised: it says nothing about the
        rows, so they must not be rejected for it; the delivery fails and Pub/Sub redelivers.
        """
        request = types.AppendRowsRequest(write_stream=self.stream, proto_rows=types.AppendRowsRequest.ProtoData(
            rows=types.ProtoRows(serialized_rows=rows)))
        with self._lock:
            if self._opening is not None and self._opening.is_alive():
                raise TimeoutError("an earlier AppendRows connection is still opening")
            stream = self._connection()
            try:
                future = self._start(stream, request)
            except BaseException as exc:
                if self._stream is stream:  # a connection that failed to send is never reused
                    self._close_locked()
                self._raise_if_refused(exc)
                raise
        try:
            response = future.result(timeout=self._timeout, polling=ANSWER_POLLING)
        except TRANSIENT as exc:
            self._discard(stream)  # the retry goes over a fresh connection, never one that failed or went quiet
            self._raise_if_refused(exc)
            raise
        except gexc.GoogleAPICallError as exc:
            found = getattr(exc, "response", None)
            if isinstance(found, types.AppendRowsResponse) and found.row_errors:
                return self._row_errors(found), None
            if _schema_mismatch(exc) and self.refresh_schema():
                raise SchemaChanged(str(exc)) from exc
            if isinstance(exc, gexc.InvalidArgument):
                return [], f"{type(exc).__name__}: {exc}"[:1000]
            raise
        if response.row_errors:
            return self._row_errors(response), None
        if response.error.code:
            return [], f"{response.error.code}: {response.error.message}"[:1000]
        if response.updated_schema.fields:
            self.refresh_schema()  # later requests use the columns the service now sees
        return [], None

    def _raise_if_refused(self, exc: BaseException) -> None:
        """The library hides why a stream did not open: on that failure, ask the service about the stream (a
        unary call that answers with the real status). A permanent cause is logged and raised, so the delivery
        fails at once instead of retrying for its whole budget; anything else leaves the failure as it was."""
        if not (isinstance(exc, gexc.Unknown) and OPEN_FAILED in str(exc)):
            return
        try:
            self._client.get_write_stream(request={"name": self.stream}, timeout=self._timeout)
        except PERMANENT as cause:
            logs.error("append_stream_refused", table=self._table.name, reasonCode=type(cause).__name__,
                       detail=str(cause)[:500])
            raise cause from exc
        except gexc.GoogleAPIError:
            return

    @staticmethod
    def _row_errors(response: types.AppendRowsResponse) -> list[RowError]:
        return [RowError(e.index, getattr(e.code, "name", str(e.code)), e.message) for e in response.row_errors]

    def _start(self, stream: AppendRowsStream, request: types.AppendRowsRequest) -> AppendRowsFuture:
        """Send on the connection within the timeout (called with the lock held).

        Opening a connection waits for the server's first answer with no bound of ours (the library
        allows 600 s), so the send runs in a helper thread. A connection that does not open in time is
        abandoned and closed by that thread once it opens (its request may still land: at-least-once);
        while it is pending no other is opened, so a stalled service never collects open connections:
        appends fail fast instead, until it resolves.
        """
        outcome: dict = {}
        handoff = threading.Lock()

        def send() -> None:
            try:
                result = stream.send(request)
            except BaseException as exc:  # handed to the caller below
                result = exc
            with handoff:
                outcome["result"] = result
                if outcome.get("abandoned"):
                    _close_quietly(stream)

        sender = threading.Thread(target=send, name="append-rows-send", daemon=True)
        sender.start()
        sender.join(self._timeout)
        with handoff:
            if "result" not in outcome:
                outcome["abandoned"] = True  # the sender closes it once the open completes
                self._stream, self._opening = None, sender
                raise TimeoutError(f"AppendRows connection not open within {self._timeout:g}s")
        if isinstance(outcome["result"], BaseException):
            raise outcome["result"]
        return outcome["result"]

    def _discard(self, stream: AppendRowsStream) -> None:
        """Close this connection if it is still the current one (never another thread's new one)."""
        with self._lock:
            if self._stream is stream:
                self._stream = None
        _close_quietly(stream)

    def _connection(self) -> AppendRowsStream:
        """The open connection, created on first use (called with the lock held)."""
        if self._stream is None:
            template = types.AppendRowsRequest(
                write_stream=self.stream,
                proto_rows=types.AppendRowsRequest.ProtoData(
                    writer_schema=types.ProtoSchema(proto_descriptor=self.descriptor)),
            )
            self._stream = AppendRowsStream(self._client, template)
            self.connections_opened += 1
            logs.info("append_connection_opened", table=self._table.name, count=self.connections_opened)
        return self._stream

    def _close_locked(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_quietly(stream)

    def close(self) -> None:
        """Close the connection (a later append opens a new one)."""
        with self._lock:
            self._close_locked()
