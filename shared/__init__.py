"""Telemetry Gateway package.

Top level: what both functions run (config, errors, logs, timestamps, the event's shape, the Pub/Sub
envelope). `shared.ingest`: only the ingest function. `shared.sink`: only the sink function.
`tools`: command-line tools no function runs (never deployed).
"""
