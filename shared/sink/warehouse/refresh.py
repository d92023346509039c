"""The aggregates' refresh: one BigQuery script, run as-is by the scheduled query and by `refresh()`.

It rebuilds only the days that received rows since the last run (by `inserted_at`), each aggregate
with one atomic MERGE per run, and records the run last so a failed run is redone by the next one.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from shared import logs
from shared.sink.warehouse.aggregates import (
    AGGREGATE_RUNS,
    DAILY_TABLES,
    FIRST_RUN_LOOKBACK_DAYS,
    INSTANCES,
    LOOKBACK_DAYS,
    OVERLAP_MINUTES,
)
from shared.sink.warehouse.columns import TableDef

if TYPE_CHECKING:  # deploy.sh prints the script many times: it loads no Google client
    from google.cloud import bigquery

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


