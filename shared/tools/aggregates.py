"""The analysts' aggregates: definitions, the refresh script, and a CLI for deploy.sh and operators.

Grains and sources (docs/analysts.md "Which table answers which question"):
- `daily_active_instances`: UTC day x instance. A BigQuery materialized view over `events`: it needs no
  dedup (latest values and first/last times are the same with or without duplicate deliveries), so
  BigQuery keeps it fresh on its own. Locally it is a plain view of the same query.
- `daily_feature_usage` (day x feature x action x client name x client version), `daily_active_users`
  (day x instance), `daily_metadata_keys` (day x feature x action x parameters version x key): tables
  with exact counts of deduplicated events, which need COUNT(DISTINCT)/GROUP BY over the dedup key -
  outside what an incremental materialized view may hold. A scheduled query rebuilds only the days that
  received rows since the last run (by `inserted_at`), each day in one atomic MERGE.
- `instances`: one row per instance, rebuilt from `daily_active_instances` in the same run.
- `metadata_keys`: a view over `daily_metadata_keys` (the catalogue over all days).

The refresh is one BigQuery script, run as-is by the scheduled query and by `refresh()` here.

    python -m shared.tools.aggregates refresh                      # run it now (settings as for the sink)
    python -m shared.tools.aggregates rebuild --from DAY [--to DAY] # rebuild those days (repairs, erasures)
    python -m shared.tools.aggregates script|params PROJECT.DATASET [--event-max-age-days N]  # the refresh
    python -m shared.tools.aggregates tables PROJECT.DATASET DAYS | mv PROJECT.DATASET  # DDL for deploy.sh
    python -m shared.tools.aggregates mv-current PROJECT.DATASET < bq-show.json       # exit 0: unchanged
    python -m shared.tools.aggregates find-config NAME < bq-ls.json                   # the config's resource
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING

from shared import logs
from shared.config import Config
from shared.sink.tables import (
    BYTES,
    DATE,
    FLOAT64,
    INT64,
    STRING,
    TIMESTAMP,
    Column,
    TableDef,
    add_column_statements,
    create_table_sql,
    partition_expiration_sql,
    sql_string,
)

if TYPE_CHECKING:  # deploy.sh runs the SQL-printing commands many times: they load no Google client
    from google.cloud import bigquery

# A row's inserted_at is stamped before its append is acknowledged; the watermark overlaps the previous
# run by this much so a row that became visible late is still picked up (rebuilding a day twice is harmless).
OVERLAP_MINUTES = 15
# Days before a run that a newly inserted row's event can belong to: ingest refuses events older than
# EVENT_MAX_AGE_DAYS, and a message may wait in Pub/Sub (7 days) or rejected_events (30 days, then a
# replay) before it is written: the lookback is EVENT_MAX_AGE_DAYS + LOOKBACK_SLACK_DAYS (deploy.sh passes
# the deployed setting). Older late rows (a hand replay of an ancient rejection) need `rebuild`. The first
# run looks back over the whole table.
LOOKBACK_SLACK_DAYS = 35
LOOKBACK_DAYS = 365 + LOOKBACK_SLACK_DAYS
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

TABLES = (DAILY_FEATURE_USAGE, DAILY_ACTIVE_USERS, DAILY_METADATA_KEYS, INSTANCES, AGGREGATE_RUNS)
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

# One row per event (the events_deduped key) on the days being rebuilt; only the columns a statement
# names are read. Duplicate deliveries carry the same event, so ANY_VALUE of an event field is that field.
_EVENTS_OF_DAYS = """
  SELECT DATE(`timestamp`) AS day, feature, action, instance_id{columns}
  FROM `{ds}.events`
  WHERE `timestamp` >= TIMESTAMP(first_day) AND `timestamp` < TIMESTAMP(DATE_ADD(last_day, INTERVAL 1 DAY))
    AND DATE(`timestamp`) IN UNNEST(days)
  GROUP BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action"""
_USER_KEY = ("ANY_VALUE(CASE WHEN user_id IS NOT NULL THEN CONCAT(instance_id, '/u:', CAST(user_id AS STRING)) "
             "WHEN anonymous_user_id IS NOT NULL THEN CONCAT(instance_id, '/a:', anonymous_user_id) END) AS user_key")

_SOURCES = {
    "daily_feature_usage": ("ANY_VALUE(client_name) AS client_name, ANY_VALUE(client_version) AS client_version, "
                            + _USER_KEY, """
SELECT day, feature, action, client_name, client_version, COUNT(*) AS events,
  COUNT(DISTINCT instance_id) AS instances, HLL_COUNT.INIT(instance_id) AS instances_sketch,
  COUNT(DISTINCT user_key) AS users, HLL_COUNT.INIT(user_key) AS users_sketch
FROM ({events})
GROUP BY day, feature, action, client_name, client_version"""),
    "daily_active_users": ("ANY_VALUE(client_name) AS client_name, " + _USER_KEY, """
SELECT day, instance_id, COUNT(DISTINCT user_key) AS users, HLL_COUNT.INIT(user_key) AS users_sketch,
  COUNT(*) AS events, COUNTIF(user_key IS NULL) AS events_without_user, COUNT(DISTINCT client_name) AS clients
FROM ({events})
GROUP BY day, instance_id"""),
    "daily_metadata_keys": ("ANY_VALUE(parameters_version) AS parameters_version, ANY_VALUE(metadata) AS metadata", """
SELECT day, feature, action, parameters_version, key, COUNT(*) AS events,
  COUNTIF(LAX_FLOAT64(metadata[key]) = TRUNC(LAX_FLOAT64(metadata[key]))) AS integer_events,
  SUM(LAX_FLOAT64(metadata[key])) AS value_sum, MIN(LAX_FLOAT64(metadata[key])) AS min_value,
  MAX(LAX_FLOAT64(metadata[key])) AS max_value
FROM ({events}), UNNEST(JSON_KEYS(metadata, 1)) AS key
GROUP BY day, feature, action, parameters_version, key"""),
}

_INSTANCES_SOURCE = """
WITH daily AS (SELECT DATE(day_start) AS day, * EXCEPT (day_start) FROM `{ds}.daily_active_instances`),
seen AS (
  SELECT instance_id, version, MIN(seen_at) AS first_seen_at FROM (
    SELECT instance_id, first_server_version AS version, first_event AS seen_at FROM daily
    UNION ALL SELECT instance_id, server_version, last_event FROM daily)
  WHERE version IS NOT NULL
  GROUP BY instance_id, version),
versions AS (
  SELECT instance_id, ARRAY_AGG(version ORDER BY first_seen_at, version) AS server_versions
  FROM seen GROUP BY instance_id),
latest AS (
  SELECT instance_id, MIN(day) AS first_seen, MAX(day) AS last_seen, MAX(last_event) AS last_event,
    MAX_BY(server_version, last_event) AS server_version,
    MAX_BY(license_fingerprint, last_event) AS license_fingerprint,
    MAX_BY(external_url, last_event) AS external_url, MAX_BY(caller_kind, last_event) AS caller_kind,
    COUNTIF(day > DATE_SUB(CURRENT_DATE(), INTERVAL 28 DAY) AND day <= CURRENT_DATE()) AS active_days_28,
    CURRENT_DATE() AS as_of
  FROM daily GROUP BY instance_id)
SELECT l.instance_id, l.first_seen, l.last_seen, l.last_event, l.server_version,
  IFNULL(v.server_versions, []) AS server_versions, l.license_fingerprint, l.external_url, l.caller_kind,
  l.active_days_28, l.as_of
FROM latest AS l LEFT JOIN versions AS v ON v.instance_id = l.instance_id"""


def _names(table: TableDef, prefix: str = "") -> str:
    return ", ".join(f"{prefix}`{c.name}`" for c in table.columns)


def _replace(table: TableDef, ds: str, source: str, days_only: bool) -> str:
    """One atomic MERGE: the source's rows replace the target's rows (on the rebuilt days only, if days_only)."""
    scope = " AND t.day IN UNNEST(days)" if days_only else ""
    return (f"MERGE `{ds}.{table.name}` AS t\nUSING ({source}\n) AS s\nON FALSE\n"
            f"WHEN NOT MATCHED BY SOURCE{scope} THEN DELETE\n"
            f"WHEN NOT MATCHED THEN INSERT ({_names(table)}) VALUES ({_names(table, 's.')})")


def _statements(ds: str) -> list[str]:
    """The rebuild of every aggregate for the days in the script variable `days`, in dependency order.

    The daily tables change together in one transaction. `instances` follows outside it: inside a
    transaction a materialized view is read like a logical view, i.e. computed over all of `events`.
    """
    statements = ["BEGIN TRANSACTION"]
    for table in DAILY_TABLES:
        columns, query = _SOURCES[table.name]
        events = _EVENTS_OF_DAYS.format(ds=ds, columns=f",\n    {columns}")
        statements.append(_replace(table, ds, query.format(events=events), days_only=True))
    statements.append("COMMIT TRANSACTION")
    statements.append(_replace(INSTANCES, ds, _INSTANCES_SOURCE.format(ds=ds), days_only=False))
    return statements


def _script(ds: str, kind: str, days_sql: str, *declares: str) -> str:
    """The rebuild script for the days `days_sql` names; `declares` come before it (BigQuery wants them first)."""
    head = [
        "DECLARE run_started TIMESTAMP DEFAULT CURRENT_TIMESTAMP()",
        *declares,
        f"DECLARE days ARRAY<DATE> DEFAULT ({days_sql})",
        "DECLARE first_day DATE DEFAULT (SELECT MIN(d) FROM UNNEST(days) AS d)",
        "DECLARE last_day DATE DEFAULT (SELECT MAX(d) FROM UNNEST(days) AS d)",
    ]
    record = (f"INSERT INTO `{ds}.{AGGREGATE_RUNS.name}` ({_names(AGGREGATE_RUNS)}) "
              f"VALUES ('{kind}', run_started, CURRENT_TIMESTAMP(), IFNULL(days, []))")
    answer = "SELECT IFNULL(days, []) AS days"  # a script's result is its last statement's: this run's days
    return ";\n".join([*head, *_statements(ds), record, answer]) + ";\n"


def refresh_script(ds: str, overlap_minutes: int = OVERLAP_MINUTES, lookback_days: int = LOOKBACK_DAYS) -> str:
    """The scheduled query: rebuild the days that received rows since the last refresh (first run: all days).

    `days` is a script variable, a constant to the statements after it, so BigQuery prunes `events` to
    those partitions (a subquery in the filter would not prune).
    """
    dirty = f"""
    SELECT ARRAY_AGG(DISTINCT DATE(`timestamp`) ORDER BY DATE(`timestamp`))
    FROM `{ds}.events`
    WHERE `timestamp` >= TIMESTAMP_SUB(run_started, INTERVAL IF(since IS NULL, {FIRST_RUN_LOOKBACK_DAYS},
                                                                  {int(lookback_days)}) DAY)
      AND (since IS NULL OR inserted_at >= since)"""
    since = (f"DECLARE since TIMESTAMP DEFAULT (SELECT TIMESTAMP_SUB(MAX(started_at), INTERVAL {int(overlap_minutes)} "
             f"MINUTE) FROM `{ds}.{AGGREGATE_RUNS.name}` WHERE kind = 'refresh')")
    return _script(ds, "refresh", dirty.strip(), since)


def rebuild_script(ds: str, days: list[date]) -> str:
    """Rebuild exactly these days (after an erasure, or for late rows older than the refresh looks back)."""
    literal = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(set(days)))
    return _script(ds, "rebuild", f"SELECT [{literal}]" if literal else "SELECT CAST(NULL AS ARRAY<DATE>)")


def materialized_view_sql(ds: str) -> str:
    """The materialized view's query."""
    return MATERIALIZED_VIEW_SQL.format(ds=ds).strip()


def _materialized_view_create(ds: str, label: str) -> str:
    return (f"CREATE MATERIALIZED VIEW `{ds}.{MATERIALIZED_VIEW}`\nPARTITION BY DATE(day_start)\n"
            f"CLUSTER BY instance_id\nOPTIONS (enable_refresh = true, refresh_interval_minutes = 30, "
            f"description = {sql_string(MATERIALIZED_VIEW_DESCRIPTION)}, labels = [('definition', '{label}')])\n"
            f"AS {materialized_view_sql(ds)}")


def definition_label(ds: str) -> str:
    """A label naming the materialized view's whole definition (deploy.sh replaces it only when it changes)."""
    return hashlib.sha256(_materialized_view_create(ds, "").encode()).hexdigest()[:16]


def materialized_view_ddl(ds: str) -> str:
    """BigQuery DDL: partitioned like the base table, refreshed by BigQuery (docs/analysts.md cites the rules).

    Dropped and created rather than replaced (one Google page says a materialized view cannot be replaced);
    a new one is computed over the whole base table, so deploy.sh runs this only when the label differs.
    """
    return (f"DROP MATERIALIZED VIEW IF EXISTS `{ds}.{MATERIALIZED_VIEW}`;\n"
            f"{_materialized_view_create(ds, definition_label(ds))}")


def tables_ddl(ds: str, expiration_days: int) -> list[str]:
    """Create missing aggregate tables, add new columns, set partition expiration; then the logical views."""
    statements = []
    for table in TABLES:
        ref = f"{ds}.{table.name}"
        statements.append(create_table_sql(table, ref, expiration_days if table.expiration_setting else None))
        statements += add_column_statements(table, ref)
        if table.partition_field:
            statements.append(partition_expiration_sql(ref, expiration_days))
    return statements + [f"CREATE OR REPLACE VIEW `{ds}.{name}` AS {sql.format(ds=ds).strip()}"
                         for name, sql in VIEWS.items()]


def find_configs(configs: list[dict], display_name: str) -> list[str]:
    """Resource names of the scheduled queries with this display name (display names are not unique)."""
    return sorted(c["name"] for c in configs if c.get("displayName") == display_name and c.get("name")
                  and c.get("dataSourceId", "scheduled_query") == "scheduled_query")


def dataset_of(config: Config) -> str:
    """project.dataset."""
    return f"{config.project}.{config.bq_dataset}"


def create(client: bigquery.Client, ds: str, expiration_days: int, materialized: bool = True) -> None:
    """Create or update every aggregate object; materialized=False makes the materialized view a plain view."""
    view = (materialized_view_ddl(ds) + ";" if materialized
            else f"CREATE OR REPLACE VIEW `{ds}.{MATERIALIZED_VIEW}` AS {materialized_view_sql(ds)}")
    for statement in [view, *tables_ddl(ds, expiration_days)]:
        client.query(statement).result()


def _run(client: bigquery.Client, ds: str, kind: str, script: str) -> list[date]:
    """Run a script; return the days it rebuilt (its result)."""
    result = client.query(script).result()
    days = sorted(d if isinstance(d, date) else date.fromisoformat(d) for row in result for d in row.days)
    logs.info(f"aggregates_{kind}", dataset=ds, days=len(days), first=str(days[0]) if days else None,
              last=str(days[-1]) if days else None)
    return days


def refresh(client: bigquery.Client, ds: str, overlap_minutes: int = OVERLAP_MINUTES,
            lookback_days: int = LOOKBACK_DAYS) -> list[date]:
    """Run the scheduled query's script now; return the days it rebuilt."""
    return _run(client, ds, "refresh", refresh_script(ds, overlap_minutes, lookback_days))


def rebuild(client: bigquery.Client, ds: str, days: list[date]) -> list[date]:
    """Rebuild the named days; return them."""
    return _run(client, ds, "rebuild", rebuild_script(ds, days))


def _day_range(first: str, last: str | None) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last or first)
    if end < start or (end - start).days > 3660:
        raise ValueError("--to must be on or after --from, at most 10 years later")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def main(argv: list[str] | None = None) -> int:
    """CLI: see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m shared.tools.aggregates", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("refresh")
    rb = sub.add_parser("rebuild")
    rb.add_argument("--from", dest="first", required=True)
    rb.add_argument("--to", dest="last")
    for name in ("script", "mv", "params", "mv-current"):
        cmd = sub.add_parser(name)
        cmd.add_argument("dataset", help="PROJECT.DATASET")
        if name in ("script", "params"):
            cmd.add_argument("--event-max-age-days", type=int, default=LOOKBACK_DAYS - LOOKBACK_SLACK_DAYS,
                             help="the deployed EVENT_MAX_AGE_DAYS: the refresh looks back that + 35 days")
    sub.add_parser("mv-name")
    sub.add_parser("find-config").add_argument("display_name")
    tb = sub.add_parser("tables")
    tb.add_argument("dataset", help="PROJECT.DATASET")
    tb.add_argument("expiration_days", type=int)
    args = p.parse_args(argv)
    if args.command in ("script", "params"):
        script = refresh_script(args.dataset, lookback_days=args.event_max_age_days + LOOKBACK_SLACK_DAYS)
        if args.command == "params":  # the scheduled query's --params
            print(json.dumps({"query": script}))
        else:
            print(script, end="")
    elif args.command == "mv":
        print(materialized_view_ddl(args.dataset))
    elif args.command == "mv-name":
        print(MATERIALIZED_VIEW)
    elif args.command == "find-config":  # `bq ls --transfer_config --format=json` on stdin
        text = sys.stdin.read().strip()  # bq prints nothing when there is no config
        try:
            found = find_configs(json.loads(text) if text else [], args.display_name)
        except (ValueError, TypeError, KeyError) as e:
            print(f"not a bq transfer config list: {e}", file=sys.stderr)
            return 1
        if len(found) > 1:  # stdout is the answer deploy.sh reads; warnings go to stderr
            print(f"warning: {len(found)} scheduled queries named {args.display_name}: {found}; updating the "
                  "first, delete the others", file=sys.stderr)
        print(found[0] if found else "")
    elif args.command == "mv-current":  # `bq show --format=json` of the view on stdin
        try:
            live = json.load(sys.stdin).get("labels", {}).get("definition")
        except ValueError:
            live = None
        return 0 if live == definition_label(args.dataset) else 1
    elif args.command == "tables":
        print(";\n".join(tables_ddl(args.dataset, args.expiration_days)) + ";")
    else:
        try:
            days = _day_range(args.first, args.last) if args.command == "rebuild" else []
        except ValueError as e:
            p.error(str(e))
        from shared.sink.bq import bigquery_client

        config = Config.from_env()
        client = bigquery_client(config)
        days = (refresh(client, dataset_of(config)) if args.command == "refresh"
                else rebuild(client, dataset_of(config), days))
        print(f"{args.command}: {len(days)} days rebuilt" + (f" ({days[0]} .. {days[-1]})" if days else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
