"""A stream that will not open: the library says only "a problem opening the stream"; the writer finds out why."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from shared.sink.storage_write import Backoff, TableWriter
from shared.sink.warehouse.tables import REJECTED


class Refusing:
    """A write client whose AppendRows never opens; GetWriteStream answers with `stream_answer`."""

    def __init__(self, stream_answer: Exception | None) -> None:
        self.stream_answer, self.opens, self.asked = stream_answer, 0, 0

    def append_rows(self, requests, metadata=(), **kwargs):
        self.opens += 1
        raise gexc.PermissionDenied("the caller does not have permission") if self.stream_answer else \
            gexc.ServiceUnavailable("connect failed")

    def get_write_stream(self, request, timeout=None, **kwargs):
        self.asked += 1
        if self.stream_answer:
            raise self.stream_answer
        return object()


def writer(client: Refusing) -> TableWriter:
    return TableWriter(client, "p", "d", REJECTED, 2.0, backoff=Backoff(budget_s=3.0, initial_s=0.01, maximum_s=0.05))


@pytest.mark.parametrize("cause", [gexc.PermissionDenied("bigquery.tables.updateData denied"),
                                   gexc.NotFound("Table p:d.rejected_events not found")])
def test_a_permanent_cause_fails_at_once_with_its_real_name(cause, capsys):
    client = Refusing(cause)
    started = time.monotonic()
    with pytest.raises(type(cause)):
        writer(client).append([b""])
    assert time.monotonic() - started < 2.0 and client.opens == 1 and client.asked == 1  # no retry
    logged = capsys.readouterr().out
    assert '"append_stream_refused"' in logged and type(cause).__name__ in logged


def test_an_open_failure_the_stream_explains_away_stays_transient():
    """GetWriteStream answers: nothing is wrong with the stream, so the open is retried within the budget."""
    client = Refusing(None)
    with pytest.raises(gexc.GoogleAPIError):
        writer(client).append([b""])
    assert client.opens >= 2
