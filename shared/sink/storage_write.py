"""BigQuery Storage Write API: proto rows on a table's default stream (at-least-once)."""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from shared.sink.tables import TableDef

_F = descriptor_pb2.FieldDescriptorProto
PROTO_TYPES = {  # TIMESTAMP: int64 microseconds since the epoch; JSON: a string holding JSON
    "STRING": _F.TYPE_STRING, "INT64": _F.TYPE_INT64, "FLOAT64": _F.TYPE_DOUBLE, "BOOL": _F.TYPE_BOOL,
    "TIMESTAMP": _F.TYPE_INT64, "JSON": _F.TYPE_STRING,
}
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # AppendRows accepts up to 10 MB per request


@dataclass(frozen=True)
class RowError:
    """A row BigQuery refused, by its index in the rows given to append()."""

    index: int
    code: str
    message: str


class TableWriter:
    """Serializes row dicts with a descriptor built from the table definition and appends them."""

    def __init__(self, client: BigQueryWriteClient, project: str, dataset: str, table: TableDef,
                 timeout_s: float) -> None:
        self._client = client
        self._timeout = timeout_s
        self.stream = f"projects/{project}/datasets/{dataset}/tables/{table.name}/streams/_default"
        self.descriptor = descriptor_pb2.DescriptorProto(name="Row")
        for number, column in enumerate(table.columns, 1):
            label = _F.LABEL_REPEATED if column.mode == "REPEATED" else _F.LABEL_OPTIONAL
            self.descriptor.field.add(name=column.name, number=number, type=PROTO_TYPES[column.type], label=label)
        file_proto = descriptor_pb2.FileDescriptorProto(name=f"{table.name}.proto", package="gateway",
                                                        syntax="proto2")
        file_proto.message_type.add().CopyFrom(self.descriptor)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file_proto)
        self.message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("gateway.Row"))

    def serialize(self, row: dict, shared: bytes = b"") -> bytes:
        """One row as proto bytes (None leaves a field unset, i.e. NULL).

        `shared` is the serialized form of columns every row of a batch has in common: protobuf
        concatenation is a merge, so they are serialized once per batch instead of once per row.
        """
        return self.message_class(**row).SerializeToString() + shared

    def append(self, rows: list[bytes]) -> list[RowError]:
        """Append rows in requests under the size cap; every row not returned as an error is written."""
        errors: list[RowError] = []
        start = 0
        while start < len(rows):
            end, size = start, 0
            while end < len(rows) and (end == start or size + len(rows[end]) < MAX_REQUEST_BYTES):
                size += len(rows[end])
                end += 1
            errors += self._append_chunk(rows[start:end], start)
            start = end
        return errors

    def _append_chunk(self, chunk: list[bytes], offset: int) -> list[RowError]:
        """A request with row errors writes nothing: append its good rows again, once."""
        refused = self._append(chunk)
        if not refused:
            return []
        bad = {e.index for e in refused}
        good = [row for i, row in enumerate(chunk) if i not in bad]
        if good and self._append(good):
            raise RuntimeError("AppendRows refused rows that it accepted in the previous request")
        return [RowError(offset + e.index, getattr(e.code, "name", str(e.code)), e.message) for e in refused]

    def _append(self, rows: list[bytes]) -> list:
        request = types.AppendRowsRequest(
            write_stream=self.stream,
            proto_rows=types.AppendRowsRequest.ProtoData(
                writer_schema=types.ProtoSchema(proto_descriptor=self.descriptor),
                rows=types.ProtoRows(serialized_rows=rows),
            ),
        )
        metadata = (("x-goog-request-params", f"write_stream={self.stream}"),)
        responses = self._client.append_rows(iter([request]), timeout=self._timeout, metadata=metadata)
        row_errors: list = []
        answered = False
        for response in responses:
            answered = True
            if response.row_errors:
                row_errors += list(response.row_errors)
            elif response.error.code:
                raise RuntimeError(f"AppendRows failed: {response.error.code} {response.error.message}")
        if not answered:  # never take silence for success: the message must be redelivered
            raise RuntimeError("AppendRows returned no response")
        return row_errors
