"""The analysts' aggregates: their tables, the materialized view and the catalogue view (docs/analysts.md).

Grains and sources ("Which table answers which question"):
- `daily_active_instances`: UTC day x instance. A BigQuery materialized view over `events`: it needs no
  dedup (latest values and first/last times are the same with or without duplicate deliveries), so
  BigQuery keeps it fresh on its own. Locally it is a plain view of the same query.
- `daily_feature_usage`, `daily_active_users`, `daily_metadata_keys`: tables with exact counts of
  deduplicated events (COUNT(DISTINCT)/GROUP BY over the dedup key: outside what an incremental
  materialized view may hold), rebuilt per day by the scheduled refresh (`refresh.py`).
- `instances`: one row per instance, rebuilt from `daily_active_instances` in the same run.
- `metadata_keys`: a view over `daily_metadata_keys` (the catalogue over all days).
- `daily_ingestion_health`: UTC day x instance, from `requests` (received that day, each row once) and
  `events` (how late that day's events arrived, the latest server version), rebuilt by the same refresh.
"""

from __future__ import annotations

import hashlib
import re

from shared.sink.warehouse.columns import BYTES, DATE, FLOAT64, INT64, JSON, STRING, TIMESTAMP, Column, TableDef
from shared.sink.warehouse.ddl import materialized_view_sql

# A row's inserted_at is stamped before its append is acknowledged; the watermark overlaps the previous
# run by this much so a row that became visible late is still picked up (rebuilding a day twice is harmless).
OVERLAP_MINUTES = 15
# Days before a run that a newly inserted row's event can belong to: ingest refuses events older than
# EVENT_MAX_AGE_DAYS, and a message may wait in Pub/Sub (7 days) or rejected_events (30 days, then a
# replay) before it is written: the lookback is EVENT_MAX_AGE_DAYS + LOOKBACK_SLACK_DAYS (deploy.sh passes
# the deployed setting). Older late rows (a hand replay of an ancient rejection) need `rebuild`. The first
# run looks back over the whole table.
LOOKBACK_SLACK_DAYS = 35


def lookback_days(max_age_days: int) -> int:
    """How far back a refresh looks for the days of newly inserted rows, for an EVENT_MAX_AGE_DAYS."""
    return max_age_days + LOOKBACK_SLACK_DAYS


LOOKBACK_DAYS = lookback_days(365)  # at EVENT_MAX_AGE_DAYS' default (a test holds them together)
FIRST_RUN_LOOKBACK_DAYS = 3650

_DAY = Column("day", DATE, "UTC day of the event's `timestamp` (instance clock).", "REQUIRED")
_FEATURE = Column("feature", STRING, "Event feature.", "REQUIRED")
_ACTION = Column("action", STRING, "Event action.", "REQUIRED")
_INSTANCE = Column("instance_id", STRING, "Instance id (a managed service's service id).", "REQUIRED")
_NOT_SUMMABLE = "Distinct within this row only: do not sum across rows"
_MERGE_SKETCH = f"{_NOT_SUMMABLE}; merge the sketch instead."


def _daily(name: str, description: str, clustering: tuple[str, ...], *columns: Column) -> TableDef:
    """A table with one partition per UTC event day, kept as long as the events themselves."""
    return TableDef(name=name, description=description, partition_field="day", clustering=clustering,
                    expiration_setting="EVENTS_PARTITION_EXPIRATION_DAYS", columns=(_DAY, *columns))


DAILY_FEATURE_USAGE = _daily(
    "daily_feature_usage",
    "Grain: UTC day x feature x action x client name x client version. Exact counts of deduplicated events; "
    "distinct counts with mergeable HLL sketches.",
    ("feature", "action", "client_name"),
    _FEATURE, _ACTION,
    Column("client_name", STRING, "Recording client (NULL: not reported)."),
    Column("client_version", STRING, "Client version (NULL: not reported)."),
    Column("events", INT64, "Events, each counted once (the events_deduped key). Summable.", "REQUIRED"),
    Column("instances", INT64, f"Distinct instances. {_MERGE_SKETCH}", "REQUIRED"),
    Column("instances_sketch", BYTES, "HLL++ sketch of instance_id: HLL_COUNT.MERGE over any rows."),
    Column("users", INT64, f"Distinct users (instance + userId, else anonymous id). {_MERGE_SKETCH}",
           "REQUIRED"),
    Column("users_sketch", BYTES, "HLL++ sketch of the user key: HLL_COUNT.MERGE over any rows."),
)

DAILY_ACTIVE_USERS = _daily(
    "daily_active_users",
    "Grain: UTC day x instance. Users active that day (user key: instance + userId, else the anonymous user id).",
    ("instance_id",),
    _INSTANCE,
    Column("users", INT64, f"Distinct users that day. {_MERGE_SKETCH}", "REQUIRED"),
    Column("users_sketch", BYTES, "HLL++ sketch of the user key: HLL_COUNT.MERGE across days or instances."),
    Column("events", INT64, "Events, each counted once. Summable.", "REQUIRED"),
    Column("events_without_user", INT64, "Events with neither userId nor anonymousUserId. Summable.",
           "REQUIRED"),
    Column("clients", INT64, f"Distinct client names. {_NOT_SUMMABLE}.", "REQUIRED"),
)

DAILY_METADATA_KEYS = _daily(
    "daily_metadata_keys",
    "Grain: UTC day x feature x action x parameters version x metadata key.",
    ("feature", "action", "key"),
    _FEATURE, _ACTION,
    Column("parameters_version", INT64, "parameters.version (NULL: not sent)."),
    Column("key", STRING, "A key of `metadata` (numbers only; legacyMetadata merged in).", "REQUIRED"),
    Column("events", INT64, "Events carrying the key, each counted once. Summable.", "REQUIRED"),
    Column("integer_events", INT64, "Of those, events whose value is a whole number: read it with "
                                    "LAX_INT64 when this equals events, else LAX_FLOAT64.", "REQUIRED"),
    Column("value_sum", FLOAT64, "Sum of the values (LAX_FLOAT64). Summable: the average over any rows is "
                                 "SUM(value_sum) / SUM(events)."),
    Column("min_value", FLOAT64, "Smallest value (LAX_FLOAT64)."),
    Column("max_value", FLOAT64, "Largest value (LAX_FLOAT64)."),
)

INSTANCES = TableDef(
    name="instances",
    description="Grain: one row per instance ever seen in the retained events (from daily_active_instances).",
    partition_field="",
    clustering=("instance_id",),
    columns=(
        _INSTANCE,
        Column("first_seen", DATE, "First UTC day with an event.", "REQUIRED"),
        Column("last_seen", DATE, "Last UTC day with an event.", "REQUIRED"),
        Column("last_event", TIMESTAMP, "Latest event time (instance clock).", "REQUIRED"),
        Column("server_version", STRING, "Server version of the latest event."),
        Column("server_versions", STRING, "Versions seen, in the order first seen (per day the first and "
                                          "the last are kept: a version passed through within one day "
                                          "between two others is not listed).", "REPEATED"),
        Column("license_fingerprint", STRING, "License fingerprint of the latest event."),
        Column("external_url", STRING, "External URL of the latest event."),
        Column("caller_kind", STRING, "caller_kind of the latest event."),
        Column("active_days_28", INT64, "Days with an event among the 28 UTC days ending on as_of.", "REQUIRED"),
        Column("as_of", DATE, "The UTC day the refresh ran; active_days_28 counts back from it (partial day).",
               "REQUIRED"),
    ),
)

DAILY_INGESTION_HEALTH = _daily(
    "daily_ingestion_health",
    "Grain: UTC day x instance. What the gateway received from each instance (the requests table, each row "
    "once: requests received that day) and how late that day's events arrived (the events table). A request "
    "refused before its body was read (a bad license) counts for the instance that last sent events with its "
    "license; instance_id NULL: no instance could be named.",
    ("instance_id",),
    Column("instance_id", STRING, "Instance id; NULL: requests no instance could be named for."),
    Column("requests", INT64, "Requests recorded one by one (suppressed ones are in `suppressed`).", "REQUIRED"),
    Column("accepted_requests", INT64, "Requests answered 200 with at least one event accepted.", "REQUIRED"),
    Column("events_sent", INT64, "Events in the bodies of those requests.", "REQUIRED"),
    Column("events_accepted", INT64, "Events accepted and published.", "REQUIRED"),
    Column("refused", JSON, "Refused events per reason (200 answers' failedEvents), e.g. {\"invalid_event\": 3}."),
    Column("redacted", JSON, "Accepted events per field the privacy policy removed."),
    Column("warnings", JSON, "Accepted events per warning code."),
    Column("unauthorized_401", INT64, "Requests answered 401 (missing, malformed or invalid license).", "REQUIRED"),
    Column("forbidden_403", INT64, "Requests answered 403 (revoked, expired, wrong environment).", "REQUIRED"),
    Column("too_large_413", INT64, "Requests answered 413.", "REQUIRED"),
    Column("throttled_429", INT64, "Requests answered 429 (quota).", "REQUIRED"),
    Column("other_refused", INT64, "Other 4xx answers (400, 408, 415).", "REQUIRED"),
    Column("failed_5xx", INT64, "Requests the gateway failed (503: retried by the instance).", "REQUIRED"),
    Column("suppressed", INT64, "Refused requests counted but not recorded one by one (a flood).", "REQUIRED"),
    Column("lateness_p50_s", FLOAT64, "Median of received_at - timestamp over the day's events (approximate)."),
    Column("lateness_p95_s", FLOAT64, "95th percentile of the same (approximate)."),
    Column("server_version", STRING, "Server version of the day's latest event."),
    Column("last_request_at", TIMESTAMP, "The day's last recorded request."),
)

AGGREGATE_RUNS = TableDef(
    name="aggregate_runs",
    description="One row per completed refresh or rebuild of the aggregates (the refresh's watermark).",
    partition_field="",
    clustering=("kind",),
    columns=(
        Column("kind", STRING, "refresh (scheduled, incremental) or rebuild (named days).", "REQUIRED"),
        Column("started_at", TIMESTAMP, "When the run started: the next refresh reads rows inserted since "
                                        f"then minus {OVERLAP_MINUTES} minutes.", "REQUIRED"),
        Column("finished_at", TIMESTAMP, "When it finished.", "REQUIRED"),
        Column("days", DATE, "Days rebuilt.", "REPEATED"),
    ),
)

TABLES = (DAILY_FEATURE_USAGE, DAILY_ACTIVE_USERS, DAILY_METADATA_KEYS, INSTANCES, DAILY_INGESTION_HEALTH,
          AGGREGATE_RUNS)
DAILY_TABLES = (DAILY_FEATURE_USAGE, DAILY_ACTIVE_USERS, DAILY_METADATA_KEYS)

MATERIALIZED_VIEW = "daily_active_instances"
MATERIALIZED_VIEW_DESCRIPTION = ("Grain: UTC day (day_start, 00:00 UTC) x instance: latest license, URL, server "
                                 "version of the day, first/last event. Materialized view over events.")
MATERIALIZED_VIEW_SQL = """
SELECT
  TIMESTAMP_TRUNC(`timestamp`, DAY) AS day_start,
  instance_id,
  MAX_BY(license_fingerprint, `timestamp`) AS license_fingerprint,
  MAX_BY(external_url, `timestamp`) AS external_url,
  MAX_BY(caller_kind, `timestamp`) AS caller_kind,
  MIN_BY(server_version, `timestamp`) AS first_server_version,
  MAX_BY(server_version, `timestamp`) AS server_version,
  MIN(`timestamp`) AS first_event,
  MAX(`timestamp`) AS last_event
FROM `{ds}.events`
GROUP BY day_start, instance_id"""
MATERIALIZED_VIEW_COLUMNS = tuple(  # the last word of each line of the select list
    re.findall(r"(\w+),?$", MATERIALIZED_VIEW_SQL.split("SELECT", 1)[1].split("\nFROM", 1)[0], re.M))

VIEWS = {
    "metadata_keys": """
SELECT feature, action, parameters_version, key,
  MIN(day) AS first_day, MAX(day) AS last_day, SUM(events) AS events,
  SUM(integer_events) = SUM(events) AS integers_only, SAFE_DIVIDE(SUM(value_sum), SUM(events)) AS mean_value,
  MIN(min_value) AS min_value, MAX(max_value) AS max_value
FROM `{ds}.daily_metadata_keys`
GROUP BY feature, action, parameters_version, key""",
}



def materialized_view_query(ds: str) -> str:
    """The materialized view's query."""
    return MATERIALIZED_VIEW_SQL.format(ds=ds).strip()


def _materialized_view_create(ds: str, label: str) -> str:
    return materialized_view_sql(f"{ds}.{MATERIALIZED_VIEW}", "DATE(day_start)", "instance_id",
                                 MATERIALIZED_VIEW_DESCRIPTION, {"definition": label}, materialized_view_query(ds))


def definition_label(ds: str) -> str:
    """A label naming the materialized view's whole definition (deploys replace it only when it changes)."""
    return hashlib.sha256(_materialized_view_create(ds, "").encode()).hexdigest()[:16]


def materialized_view_ddl(ds: str) -> str:
    """The view as BigQuery keeps it: partitioned like the base table, refreshed by BigQuery.

    Dropped and created rather than replaced (one Google page says a materialized view cannot be replaced);
    a new one is computed over the whole base table, so deploy.sh runs this only when the label differs.
    """
    return (f"DROP MATERIALIZED VIEW IF EXISTS `{ds}.{MATERIALIZED_VIEW}`;\n"
            f"{_materialized_view_create(ds, definition_label(ds))}")


def view_sql(name: str, ds: str) -> str:
    """A logical view's query with its dataset filled in."""
    return VIEWS[name].format(ds=ds).strip()
