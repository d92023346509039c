"""The real sink, except that its first batch crashes the process after half of the rows are written."""

import os

import functions_framework
from cloudevents.http import CloudEvent

from shared.sink.config import SinkConfig
from shared.sink.loader import Sink
from shared.sink.storage_write import TableWriter

FLAG = os.environ["CRASH_FLAG_FILE"]
_append = TableWriter.append


def _append_half_then_crash(self: TableWriter, rows: list[bytes], *args: object) -> list:
    if self.stream.endswith("/tables/events/streams/_default") and not os.path.exists(FLAG):
        _append(self, rows[: len(rows) // 2], *args)
        open(FLAG, "w").close()
        os._exit(1)  # the worker dies mid-batch; gunicorn starts a new one, as the platform would
    return _append(self, rows, *args)


TableWriter.append = _append_half_then_crash
SINK = Sink(SinkConfig.from_env())


@functions_framework.cloud_event
def sink(cloud_event: CloudEvent) -> None:
    """Same entry point as functions/sink/main.py."""
    SINK.handle(cloud_event.data)
