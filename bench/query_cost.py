"""Bytes each analyst question reads at 1M events/day, raw and from its aggregate: `python -m bench.query_cost`.

No dry run is possible here (no BigQuery), so bytes are computed the way BigQuery bills on-demand queries:
the columns a query reads x the rows in the partitions it scans, with BigQuery's logical sizes per type
(https://docs.cloud.google.com/bigquery/docs/storage_overview#storage-size-calculation: STRING 2 B + UTF-8,
INT64/FLOAT64/TIMESTAMP/DATE 8 B, BYTES 2 B + length, JSON its UTF-8 text, NULL 0, arrays the sum of
their elements). Event column sizes are averaged over the bench corpus turned into rows by the sink's own
code; aggregate row counts follow the stated assumptions. Clustering can only lower these figures: they
are upper bounds, as a dry run's would be; each table read is billed at least 10 MB. docs/analysts.md
prints the table; a test keeps them equal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache

from bench import corpus
from bench.request_log import facts
from shared.envelope import Batch, Identity
from shared.ingest.requestlog import request_record
from shared.sink.request_rows import request_row
from shared.sink.rows import context_columns, event_batch_columns, event_row, micros
from shared.sink.warehouse import aggregates
from shared.sink.warehouse.tables import EVENTS, REQUESTS

EVENTS_PER_DAY = 1_000_000
RETENTION_DAYS = 730
# Assumptions for the aggregates at 1M events/day.
ACTIVE_INSTANCES_PER_DAY = 2_000
INSTANCES_EVER = 5_000
USAGE_ROWS_PER_DAY = 2_000          # distinct feature x action x client x client version per day
METADATA_KEY_ROWS_PER_DAY = 1_500   # distinct feature x action x parameters version x key per day
REQUESTS_PER_DAY = 20_000          # requests of 50 events on average, and the refused ones
SKETCH_BYTES = 400                  # an HLL++ sketch of tens to hundreds of values (sparse); dense ones are 32 KiB
ON_DEMAND_USD_PER_TIB = 6.25        # US multi-region on-demand price; check https://cloud.google.com/bigquery/pricing
FIXED = {"INT64": 8, "FLOAT64": 8, "TIMESTAMP": 8, "DATE": 8, "BOOL": 1}
DEDUP_WINDOW = ("license_fingerprint", "instance_id", "event_id", "timestamp", "feature", "action", "received_at",
                "inserted_at", "message_id")


def logical_bytes(value: object, type_: str) -> int:
    """BigQuery's logical size of one value."""
    if value is None:
        return 0
    if isinstance(value, list):
        return sum(logical_bytes(v, type_) for v in value)
    if type_ in FIXED:
        return FIXED[type_]
    text = value if isinstance(value, (str, bytes)) else json.dumps(value)
    size = len(text.encode() if isinstance(text, str) else text)
    return size if type_ == "JSON" else 2 + size


def event_column_bytes(sample: int = 2_000) -> dict[str, float]:
    """Average logical bytes per events column over the bench corpus, as the sink writes the rows."""
    now = datetime.now(UTC)
    identity = Identity("bench-instance-0001", "https://sourcegraph.example.com", "f" * 64, ("plan:enterprise-1",),
                        "prod", "licensed_instance")
    batch = Batch(identity, "req-1", now.isoformat(), corpus.events(sample, seed=3))
    shared = event_batch_columns(context_columns(batch, "12345678901234567", micros(now)), now)
    rows = [{**shared, **event_row(e, now)} for e in batch.events]
    types = {c.name: c.type for c in EVENTS.columns}
    return {name: sum(logical_bytes(r.get(name), t) for r in rows) / len(rows) for name, t in types.items()}


@cache
def request_column_bytes() -> dict[str, int]:
    """Logical bytes per requests column of a typical accepted request's row, as the sink writes it."""
    row = request_row(request_record("prod", facts(), 200, None, 1, 12.5, "sourcegraph/6.0"), 1)
    return {c.name: logical_bytes(row.get(c.name), c.type) for c in REQUESTS.columns}


# Logical bytes of an aggregate column (typical names and versions; sketches as assumed above).
AGGREGATE_COLUMN_BYTES = {
    "day": 8, "day_start": 8, "feature": 20, "action": 12, "client_name": 23, "client_version": 8, "key": 14,
    "instance_id": 21, "parameters_version": 8, "license_fingerprint": 66, "external_url": 33, "caller_kind": 19,
    "server_version": 9, "first_server_version": 9, "server_versions": 27, "instances_sketch": SKETCH_BYTES,
    "users_sketch": SKETCH_BYTES,
}
MINIMUM_BILLED = 10 * 1024**2  # per table referenced (on-demand pricing)


def _column_bytes(name: str) -> int:
    return AGGREGATE_COLUMN_BYTES.get(name, 8)  # counts, values and times are 8-byte numbers


def _rows(table: str, days: int) -> float:
    if table == "instances":
        return INSTANCES_EVER  # not partitioned: every row is read
    return {"daily_feature_usage": USAGE_ROWS_PER_DAY, "daily_active_users": ACTIVE_INSTANCES_PER_DAY,
            "daily_active_instances": ACTIVE_INSTANCES_PER_DAY, "daily_metadata_keys": METADATA_KEY_ROWS_PER_DAY,
            "daily_ingestion_health": ACTIVE_INSTANCES_PER_DAY, "requests": REQUESTS_PER_DAY,
            }.get(table, EVENTS_PER_DAY) * days


def read_bytes(table: str, columns: tuple[str, ...], days: int, sizes: dict[str, float]) -> float:
    """Bytes billed for reading these columns over this many daily partitions (an upper bound; 10 MB minimum)."""
    if table in ("events", "events_deduped"):
        wanted = set(columns) | (set(DEDUP_WINDOW) if table == "events_deduped" else set())
        scanned = sum(sizes[c] for c in wanted) * _rows(table, days)
    elif table == "requests":
        scanned = sum(request_column_bytes()[c] for c in columns) * _rows(table, days)
    else:
        scanned = sum(_column_bytes(c) for c in columns) * _rows(table, days)
    return max(scanned, MINIMUM_BILLED)


# Each question of docs/analysts.md: what the raw query reads, and what the aggregate query reads.
# The docs' queries read whole UTC days (N partitions for "the last N days").
QUESTIONS = (
    ("Usage per day by feature (30 days)",
     ("events_deduped", ("timestamp", "feature", "instance_id"), 30),
     ("daily_feature_usage", ("day", "feature", "events", "instances_sketch"), 30)),
    ("Active instances per server version (7 days)",
     ("events", ("timestamp", "instance_id", "server_version"), 7),
     ("daily_active_instances", ("day_start", "instance_id", "server_version", "last_event"), 7)),
    ("Cody adoption: share of active instances (30 days)",
     ("events", ("timestamp", "feature", "instance_id"), 30),
     ("daily_feature_usage", ("day", "feature", "instances_sketch"), 30)),
    ("Users per client, Cody (30 days)",
     ("events", ("timestamp", "feature", "client_name", "instance_id", "user_id", "anonymous_user_id"), 30),
     ("daily_feature_usage", ("day", "feature", "client_name", "users_sketch"), 30)),
    ("Active users per instance per day (30 days)",
     ("events", ("timestamp", "instance_id", "user_id", "anonymous_user_id"), 30),
     ("daily_active_users", ("day", "instance_id", "users"), 30)),
    ("A metadata number: average latency (30 days)",
     ("events_deduped", ("timestamp", "feature", "action", "metadata"), 30),
     ("daily_metadata_keys", ("day", "feature", "action", "key", "value_sum", "events"), 30)),
    ("Which metadata keys a feature sends (all time)",
     ("events", ("timestamp", "feature", "action", "parameters_version", "metadata"), RETENTION_DAYS),
     ("daily_metadata_keys", ("day", "feature", "action", "parameters_version", "key", "events", "integer_events",
                              "value_sum", "min_value", "max_value"), RETENTION_DAYS)),
    ("Instances and what they last reported",
     ("events_deduped", ("timestamp", "instance_id", "license_fingerprint", "server_version", "received_at"), 400),
     ("instances", ("instance_id", "last_seen", "server_version", "server_versions", "active_days_28"), 1)),
    ("Why is data missing: an instance's requests, refusals and lateness per day (30 days)",
     ("requests", ("received_at", "instance_id", "license_fingerprint", "outcome", "status", "events", "accepted",
                   "refused"), 30),
     ("daily_ingestion_health", ("day", "instance_id", "requests", "events_accepted", "refused", "unauthorized_401",
                                 "forbidden_403", "throttled_429", "lateness_p95_s"), 30)),
    ("Ingestion lag by day received (30 days of events)",
     ("events", ("timestamp", "received_at"), 30), None),
)


def human(n: float) -> str:
    """Bytes as B, KB, MB, GB (powers of 1000, as in the docs)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def table(sizes: dict[str, float] | None = None) -> list[str]:
    """Markdown rows: question, raw table and bytes, aggregate and bytes, how many times cheaper."""
    sizes = sizes or event_column_bytes()
    lines = ["| question | raw query reads | aggregate | it reads | cheaper |", "|---|---|---|---|---|"]
    for question, raw, agg in QUESTIONS:
        raw_bytes = read_bytes(*raw, sizes)
        if agg is None:
            lines.append(f"| {question} | `{raw[0]}`: {human(raw_bytes)} | (none: a raw question) | - | - |")
            continue
        agg_bytes = read_bytes(*agg, sizes)
        lines.append(f"| {question} | `{raw[0]}`: {human(raw_bytes)} | `{agg[0]}` | {human(agg_bytes)} | "
                     f"{raw_bytes / agg_bytes:,.0f}x |")
    return lines


# Event columns each of the refresh's MERGE statements reads, beside the dedup key (one scan of `events` each).
REFRESH_READS = {
    "daily_feature_usage": ("client_name", "client_version", "user_id", "anonymous_user_id"),
    "daily_active_users": ("client_name", "user_id", "anonymous_user_id"),
    "daily_metadata_keys": ("parameters_version", "metadata"),
}


def refresh_bytes(sizes: dict[str, float], dirty_days: int) -> float:
    """One scheduled refresh, statement by statement: find the changed days (timestamp and inserted_at over
    the lookback), then each daily MERGE scans those days of events and of its target; `instances` reads
    all of daily_active_instances."""
    find = (sizes["timestamp"] + sizes["inserted_at"]) * EVENTS_PER_DAY * (aggregates.LOOKBACK_DAYS + 1)
    merges = 0.0
    for target, columns in REFRESH_READS.items():
        merges += sum(sizes[c] for c in set(DEDUP_WINDOW[:6]) | set(columns)) * EVENTS_PER_DAY * dirty_days
        merges += read_bytes(target, _columns(target), dirty_days, sizes)
    instances = read_bytes("daily_active_instances", aggregates.MATERIALIZED_VIEW_COLUMNS, RETENTION_DAYS, sizes)
    return (find + merges + instances + read_bytes("instances", _columns("instances"), 1, sizes)
            + health_refresh_bytes(sizes, dirty_days))


def health_refresh_bytes(sizes: dict[str, float], dirty_days: int) -> float:
    """daily_ingestion_health's part of a refresh: finding the days of new requests (received_at and inserted_at
    over the lookback), then its MERGE: those days of requests (every column) and of events (lateness, version),
    the licenses of `instances`, and its target."""
    find = read_bytes("requests", ("received_at", "inserted_at"), aggregates.LOOKBACK_DAYS + 1, sizes)
    return (find + read_bytes("requests", tuple(request_column_bytes()), dirty_days, sizes)
            + read_bytes("events", ("timestamp", "received_at", "instance_id", "server_version"), dirty_days, sizes)
            + read_bytes("instances", ("license_fingerprint", "instance_id", "last_event"), 1, sizes)
            + read_bytes("daily_ingestion_health", _columns("daily_ingestion_health"), dirty_days, sizes))


def _columns(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in {t.name: t for t in aggregates.TABLES}[table].columns)


def main() -> int:
    """Print the table and the refresh's own cost."""
    sizes = event_column_bytes()
    print(f"events: {sum(sizes.values()):,.0f} logical bytes per row; {EVENTS_PER_DAY:,} rows per day\n")
    print("\n".join(table(sizes)))
    print()
    print("\n".join(refresh_lines(sizes)))
    return 0


LATE_EVENT_AGE_DAYS = 300  # a late event this old arrives beside the usual changed days


def late_event_refresh_bytes(sizes: dict[str, float], changed_days: int = 2) -> tuple[float, float]:
    """A refresh after one event LATE_EVENT_AGE_DAYS old arrived beside `changed_days` recent changed days:
    what it reads with each MERGE filtering exactly those partitions (its days as literal ranges), and what it
    would read were the days between read too (one range from the oldest day to today)."""
    return refresh_bytes(sizes, changed_days + 1), refresh_bytes(sizes, LATE_EVENT_AGE_DAYS + 1)


def refresh_lines(sizes: dict[str, float]) -> list[str]:
    """The refresh's cost per run (2 and 10 changed days; 2 and one late event) and per day every 3 hours."""
    usd = {d: refresh_bytes(sizes, d) / 1024**4 * ON_DEMAND_USD_PER_TIB for d in (2, 10)}
    late, between = late_event_refresh_bytes(sizes)
    return [f"refresh with {d} changed days: {human(refresh_bytes(sizes, d))} (${usd[d]:.3f})" for d in usd] + [
        f"refresh with 2 changed days and one late event {LATE_EVENT_AGE_DAYS} days old: {human(late)} "
        f"(${late / 1024**4 * ON_DEMAND_USD_PER_TIB:.3f}); reading the {LATE_EVENT_AGE_DAYS - 1} days between "
        f"too would be {human(between)}",
        f"every 3 hours with 2 changed days: ${8 * usd[2]:.2f} a day"]


if __name__ == "__main__":
    raise SystemExit(main())
