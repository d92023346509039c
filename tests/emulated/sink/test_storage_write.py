"""The Storage Write writer against the BigQuery emulator, with a relay that injects what only real BigQuery does."""

from __future__ import annotations

import threading
import time

import pytest
from google.cloud.bigquery_storage_v1 import types
from google.rpc import code_pb2, status_pb2

from devtools.pipeline import create_warehouse
from shared.sink import storage_write
from shared.sink.clients import bigquery_client, live_columns, write_client
from shared.sink.config import SinkConfig
from shared.sink.storage_write import Backoff, TableWriter
from shared.sink.warehouse.tables import EVENTS, REJECTED, TABLES

FAST = Backoff(budget_s=3.0, initial_s=0.01, maximum_s=0.05)


class Call:
    """A streaming call as grpc returns it, over a generator of responses."""

    def __init__(self, responses) -> None:
        self._responses, self._callbacks, self._done = responses, [], False

    def __iter__(self) -> Call:
        return self

    def __next__(self):
        try:
            return next(self._responses)
        except StopIteration:
            self.cancel()
            raise

    def add_done_callback(self, callback) -> None:
        self._callbacks.append(callback)

    def is_active(self) -> bool:
        return not self._done

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            for callback in self._callbacks:
                callback(self)


class Relay:
    """A write client in front of the emulator's: answers for the service what the emulator cannot.

    refuse: rows containing b"BAD" make a request fail; with `name_at_most` rows named in row_errors
    (real BigQuery's list may be incomplete), or none at all. unavailable: the first N requests answer
    UNAVAILABLE. Requests it lets through go to the emulator, each over a connection of its own.
    """

    def __init__(self, real, *, name_at_most: int | None = 1, unavailable: int = 0) -> None:
        self.real, self.name_at_most, self.unavailable = real, name_at_most, unavailable
        self.connections = self.requests = 0
        self.schema = None

    def append_rows(self, requests, metadata=(), **kwargs):
        self.connections += 1
        return Call(self._answers(requests, metadata))

    def _answers(self, requests, metadata):
        for request in requests:
            self.requests += 1
            if request.proto_rows.writer_schema.proto_descriptor.field:
                self.schema, self.stream = request.proto_rows.writer_schema, request.write_stream
            rows = list(request.proto_rows.rows.serialized_rows)
            bad = [i for i, row in enumerate(rows) if b"BAD" in row]
            if self.unavailable:
                self.unavailable -= 1
                yield types.AppendRowsResponse(error=status_pb2.Status(code=code_pb2.UNAVAILABLE, message="try later"))
            elif bad:
                named = bad[: self.name_at_most] if self.name_at_most is not None else []
                yield types.AppendRowsResponse(
                    error=status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="rows refused"),
                    row_errors=[types.RowError(index=i, code=types.RowError.RowErrorCode.FIELDS_ERROR,
                                               message="bad value") for i in named])
            else:
                data = types.AppendRowsRequest.ProtoData(writer_schema=self.schema,
                                                         rows=types.ProtoRows(serialized_rows=rows))
                forwarded = types.AppendRowsRequest(write_stream=self.stream, proto_rows=data)
                yield from self.real.append_rows(iter([forwarded]), metadata=metadata)


@pytest.fixture
def config(bigquery_env) -> SinkConfig:
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    return config


def rejected_rows(writer: TableWriter, ids: list[str]) -> list[bytes]:
    return [writer.serialize({"rejection_id": i, "reason": "test", "received_at": 1, "rejected_at": 1}) for i in ids]


def stored(config: SinkConfig) -> list[str]:
    table = f"{config.project}.{config.bq_dataset}.{REJECTED.name}"
    return sorted(r.rejection_id for r in bigquery_client(config).query(f"SELECT rejection_id FROM `{table}`").result())


def test_one_connection_serves_many_appends(config):
    writer = TableWriter(write_client(config), config.project, config.bq_dataset, REJECTED, 5, backoff=FAST)
    for n in range(10):
        assert writer.append(rejected_rows(writer, [f"r{n}"])) == []
    assert writer.connections_opened == 1
    assert stored(config) == sorted(f"r{n}" for n in range(10))


@pytest.mark.parametrize("name_at_most", [1, None], ids=["truncated row_errors", "no row named"])
def test_every_good_row_written_and_every_bad_row_named(config, name_at_most):
    relay = Relay(write_client(config), name_at_most=name_at_most)
    writer = TableWriter(relay, config.project, config.bq_dataset, REJECTED, 5, backoff=FAST)
    ids = ["g0", "BAD1", "g2", "BAD3", "g4", "BAD5", "g6"]
    errors = writer.append(rejected_rows(writer, ids))
    assert sorted(e.index for e in errors) == [1, 3, 5]
    assert stored(config) == ["g0", "g2", "g4", "g6"]


def test_transient_errors_retried_inside_the_call(config, capsys):
    relay = Relay(write_client(config), unavailable=2)
    writer = TableWriter(relay, config.project, config.bq_dataset, REJECTED, 5, backoff=FAST)
    assert writer.append(rejected_rows(writer, ["after-retries"])) == []
    assert stored(config) == ["after-retries"]
    assert capsys.readouterr().out.count('"append_retry"') == 2 and relay.connections == 3


def test_silence_is_retried_then_an_error_within_the_budget(capsys):
    class Silent:
        connections = 0

        def append_rows(self, requests, metadata=(), **kwargs):
            Silent.connections += 1
            return Call(iter(threading.Event().wait, True))  # answers nothing, ever

    writer = TableWriter(Silent(), "p", "d", REJECTED, 0.3, backoff=Backoff(budget_s=3.0, initial_s=0.01))
    started = time.monotonic()
    with pytest.raises(Exception) as exc:
        writer.append(rejected_rows(writer, ["x"]))
    elapsed = time.monotonic() - started
    assert type(exc.value).__name__ in ("TimeoutError", "Unknown", "StreamClosedError")
    # Retried over fresh connections until the 3 s budget ran out: not once, not forever (an attempt takes
    # about 1.3 s here: the library's open, then the 0.3 s answer timeout).
    retries = capsys.readouterr().out.count('"append_retry"')
    assert retries >= 1 and Silent.connections == retries + 1, (retries, Silent.connections)
    assert 2.5 <= elapsed < 3.0 + 1.5 + 0.5, elapsed


def test_writer_schema_is_what_the_service_sees(config):
    live = [c.name for c in EVENTS.columns if c.name != "country_code"]
    writer = TableWriter(write_client(config), config.project, config.bq_dataset, EVENTS, 5, backoff=FAST,
                         live_columns=lambda: live)
    assert writer.refresh_schema() is True
    assert "country_code" not in [f.name for f in writer.descriptor.field]
    numbers = {f.name: f.number for f in writer.descriptor.field}
    assert numbers["extra"] == [c.name for c in EVENTS.columns].index("extra") + 1  # numbers never shift
    row = writer.message_class.FromString(writer.serialize({"event_id": "e", "country_code": "US"}))
    assert row.event_id == "e"
    live.append("country_code")
    assert writer.refresh_schema() is True and "country_code" in [f.name for f in writer.descriptor.field]
    assert writer.refresh_schema() is False


def test_live_columns_from_the_write_api(config):
    assert live_columns(write_client(config), config, EVENTS) == [c.name for c in EVENTS.columns]


def test_descriptor_matches_every_table():
    for table in TABLES:
        writer = TableWriter(client=None, project="p", dataset="d", table=table, timeout_s=1)
        assert [f.name for f in writer.descriptor.field] == [c.name for c in table.columns]
    writer = TableWriter(client=None, project="p", dataset="d", table=EVENTS, timeout_s=1)
    assert writer.stream == "projects/p/datasets/d/tables/events/streams/_default"
    row = writer.message_class.FromString(
        writer.serialize({"event_id": "x", "license_tags": ["a"], "timestamp": 5, "metadata": None}))
    assert (row.event_id, list(row.license_tags), row.timestamp, row.HasField("metadata")) == ("x", ["a"], 5, False)



class Refusing(Relay):
    """Answers every request with one service-level error that names no row."""

    def __init__(self, real, code: int, message: str) -> None:
        super().__init__(real)
        self.code, self.message = code, message

    def _answers(self, requests, metadata):
        for _ in requests:
            self.requests += 1
            yield types.AppendRowsResponse(error=status_pb2.Status(code=self.code, message=self.message))


def test_a_request_level_failure_is_raised_not_blamed_on_the_rows(config):
    relay = Refusing(write_client(config), code_pb2.PERMISSION_DENIED, "no write permission")
    writer = TableWriter(relay, config.project, config.bq_dataset, REJECTED, 5, backoff=FAST)
    with pytest.raises(Exception, match="no write permission"):
        writer.append(rejected_rows(writer, [f"r{n}" for n in range(50)]))
    assert relay.requests == 1  # not halved 99 times into 50 "bad rows"


def test_invalid_argument_for_every_row_is_a_request_failure(config):
    relay = Refusing(write_client(config), code_pb2.INVALID_ARGUMENT, "malformed request")
    writer = TableWriter(relay, config.project, config.bq_dataset, REJECTED, 5, backoff=FAST)
    with pytest.raises(RuntimeError, match="every row of a request refused"):
        writer.append(rejected_rows(writer, ["a", "b", "c", "d"]))


def test_a_schema_change_reserializes_only_the_unwritten_rows(config, monkeypatch):
    """One row a request (the size cap lowered): the first is written, the second meets the schema change and
    only it is serialized again."""
    monkeypatch.setattr(storage_write, "MAX_REQUEST_BYTES", 1)

    class Mismatch(Relay):
        seen = 0  # requests this relay answered itself or passed on

        def _answers(self, requests, metadata):
            for request in requests:
                self.seen += 1
                if self.seen == 2:
                    yield types.AppendRowsResponse(error=status_pb2.Status(
                        code=code_pb2.INVALID_ARGUMENT, message="SCHEMA_MISMATCH_EXTRA_FIELDS: replayed_at"))
                else:
                    yield from Relay._answers(self, iter([request]), metadata)

    live = [c.name for c in REJECTED.columns]
    relay = Mismatch(write_client(config))
    writer = TableWriter(relay, config.project, config.bq_dataset, REJECTED, 5, backoff=FAST,
                         live_columns=lambda: live)
    live.remove("replayed_at")  # the service does not see this column yet
    rows = [{"rejection_id": i, "reason": "x", "received_at": 1, "rejected_at": 1, "replayed_at": 5} for i in "ab"]
    reserialized = []

    def again(i: int) -> bytes:
        reserialized.append(i)
        return writer.serialize(rows[i])

    assert writer.append([writer.serialize(r) for r in rows], reserialize=again) == []
    assert reserialized == [1] and stored(config) == ["a", "b"]  # each row once
