"""Request-log records (published by ingest's shared.ingest.requestlog) -> `requests` rows."""

from __future__ import annotations

import orjson

from shared.sink.warehouse.tables import REQUESTS

COLUMNS = frozenset(c.name for c in REQUESTS.columns) - {"inserted_at"}
JSON_COLUMNS = frozenset(c.name for c in REQUESTS.columns if c.type == "JSON")
REQUIRED = frozenset(c.name for c in REQUESTS.columns if c.mode == "REQUIRED") - {"inserted_at"}


def request_row(record: dict, inserted_at_us: int) -> dict:
    """The row of one record (columns this release does not know are left out), or ValueError."""
    missing = REQUIRED - record.keys()
    if missing:
        raise ValueError(f"request record lacks {', '.join(sorted(missing))}")
    row = {name: value for name, value in record.items() if name in COLUMNS and value is not None}
    for name in JSON_COLUMNS & row.keys():
        row[name] = orjson.dumps(row[name]).decode()
    row["inserted_at"] = inserted_at_us
    return row
