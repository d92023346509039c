"""Cloud Function `ingest`: Sourcegraph instances POST telemetry event batches here."""

import gc

import functions_framework
from flask import Request, Response

from shared.ingest.config import IngestConfig
from shared.ingest.http import Gateway

# Built at start-up so a misconfigured deployment fails fast; network clients are created lazily.
GATEWAY = Gateway.from_config(IngestConfig.from_env())
# Long-lived start-up objects leave the collector's view: full collections stay short (tail latency).
gc.freeze()


@functions_framework.http
def ingest(request: Request) -> Response:
    """HTTP entry point."""
    return GATEWAY.route(request)
