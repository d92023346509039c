"""Cloud Function `sink`: Pub/Sub-triggered; loads each batch message into BigQuery."""

import gc

import functions_framework
from cloudevents.http import CloudEvent

from shared.sink.config import SinkConfig
from shared.sink.loader import Sink

# Settings are read at start-up; BigQuery clients are created on the first message.
SINK = Sink(SinkConfig.from_env())
gc.freeze()  # start-up objects leave the collector's view, as in ingest


@functions_framework.cloud_event
def sink(cloud_event: CloudEvent) -> None:
    """CloudEvent entry point: return to ack, raise to have Pub/Sub redeliver."""
    SINK.handle(cloud_event.data)
