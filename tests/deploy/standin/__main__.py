"""`python -m tests.deploy.standin --port P --pubsub HOST:PORT --bigquery HOST:PORT --log FILE [settings]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.deploy.standin.server import serve
from tests.deploy.standin.settings import Settings


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.standin", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pubsub", required=True, help="the Pub/Sub emulator's host:port")
    parser.add_argument("--bigquery", required=True, help="the BigQuery emulator's REST host:port")
    parser.add_argument("--log", type=Path, required=True, help="JSONL file receiving every request")
    Settings.add_arguments(parser)
    args = parser.parse_args()
    serve(args.port, Settings.from_args(args), args.pubsub, args.bigquery, args.log)


if __name__ == "__main__":
    main()
