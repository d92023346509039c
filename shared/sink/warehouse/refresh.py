"""The aggregates' refresh: one BigQuery script, run as-is by the scheduled query and by `refresh()`.

It rebuilds only the days that received rows since the last run (by `inserted_at`), each aggregate
with one atomic MERGE per run, and records the run last so a failed run is redone by the next one.

Every statement that reads `events` filters its partitioning column with literals only: BigQuery prunes
partitions for a constant filter expression, and a script variable is not documented to be one. The refresh
learns its days at run time, so it runs those statements with `EXECUTE IMMEDIATE`, their text built in the
script with the days written as literals (runs of consecutive days as ranges: a late event 300 days old
reads its own partition, not the 300 between); a rebuild knows its days when the script is written, so its
statements carry the literals directly (and BigQuery's dry run of a rebuild sees them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from shared import logs
from shared.sink.warehouse.aggregates import (
    AGGREGATE_RUNS,
    DAILY_INGESTION_HEALTH,
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
  WHERE ({event_days})
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


_COUNTED = ("refused", "redacted", "warnings")  # requests' JSON columns of counts, summed per key
_STATUSES = {"unauthorized_401": 401, "forbidden_403": 403, "too_large_413": 413, "throttled_429": 429}


def _merged_counts(column: str) -> str:
    """The CTE `{column}_sums`: per (day, key) the JSON object of `column`'s counts summed (the emulator has no
    JSON_OBJECT of arrays; the names are the gateway's own codes, quoted by TO_JSON_STRING)."""
    return (f"{column}_sums AS (\n"
            f"  SELECT day, key, PARSE_JSON(CONCAT('{{', STRING_AGG(FORMAT('%s: %d', TO_JSON_STRING(name), n), "
            f"', ' ORDER BY name), '}}')) AS {column}\n"
            f"  FROM (SELECT day, key, name, SUM(LAX_INT64({column}[name])) AS n\n"
            f"        FROM attributed, UNNEST(JSON_KEYS({column}, 1)) AS name GROUP BY day, key, name)\n"
            f"  GROUP BY day, key)")


def health_source(ds: str, request_days: str, event_days: str) -> str:
    """`daily_ingestion_health` for the days the filters name: requests by received_at (each record_id once),
    attributed to an instance by license when refused before the body was read; events by `timestamp`."""
    statuses = ",\n    ".join(f"COUNTIF(status = {code}) AS {name}" for name, code in _STATUSES.items())
    known = ", ".join(str(code) for code in _STATUSES.values())
    sums = ",\n".join(_merged_counts(column) for column in _COUNTED)
    joins = "".join(f"\nLEFT JOIN {column}_sums USING (day, key)" for column in _COUNTED)
    counts = ", ".join(f"IFNULL(c.{name}, 0) AS {name}" for name in (
        "requests", "accepted_requests", "events_sent", "events_accepted", *_STATUSES, "other_refused", "failed_5xx",
        "suppressed"))
    return f"""
WITH req AS (
  SELECT * FROM `{ds}.requests` WHERE ({request_days})
  QUALIFY ROW_NUMBER() OVER (PARTITION BY record_id ORDER BY inserted_at) = 1),
owners AS (
  SELECT license_fingerprint, MAX_BY(instance_id, last_event) AS instance_id FROM `{ds}.instances`
  WHERE license_fingerprint IS NOT NULL GROUP BY license_fingerprint),
attributed AS (
  SELECT DATE(r.received_at) AS day, IFNULL(COALESCE(r.instance_id, o.instance_id), '') AS key, r.*
  FROM req AS r LEFT JOIN owners AS o ON r.instance_id IS NULL AND o.license_fingerprint = r.license_fingerprint),
counts AS (
  SELECT day, key, COUNTIF(outcome != 'suppressed') AS requests,
    COUNTIF(outcome IN ('accepted', 'partial')) AS accepted_requests,
    IFNULL(SUM(events), 0) AS events_sent, IFNULL(SUM(accepted), 0) AS events_accepted,
    {statuses},
    COUNTIF(status >= 400 AND status < 500 AND status NOT IN ({known})) AS other_refused,
    COUNTIF(status >= 500) AS failed_5xx, IFNULL(SUM(suppressed), 0) AS suppressed,
    MAX(IF(outcome != 'suppressed', received_at, NULL)) AS last_request_at
  FROM attributed GROUP BY day, key),
{sums},
arrivals AS (
  SELECT DATE(`timestamp`) AS day, instance_id AS key,
    APPROX_QUANTILES(TIMESTAMP_DIFF(received_at, `timestamp`, MILLISECOND), 100) AS lateness_ms,
    MAX_BY(server_version, `timestamp`) AS server_version
  FROM `{ds}.events` WHERE ({event_days})
  GROUP BY day, key),
days AS (SELECT day, key FROM counts UNION DISTINCT SELECT day, key FROM arrivals)
SELECT day, NULLIF(key, '') AS instance_id, {counts},
  refused, redacted, warnings,
  lateness_ms[SAFE_OFFSET(50)] / 1000 AS lateness_p50_s, lateness_ms[SAFE_OFFSET(95)] / 1000 AS lateness_p95_s,
  server_version, c.last_request_at
FROM days LEFT JOIN counts AS c USING (day, key){joins}
LEFT JOIN arrivals USING (day, key)"""


# Holes in the text of the refresh's dynamic statements, filled in the script (and by `executed_statements`).
EVENT_DAYS = "__EVENT_DAYS__"    # the days' filter on events.`timestamp`
REQUEST_DAYS = "__REQUEST_DAYS__"  # the days' filter on requests.received_at
TARGET_DAYS = "__TARGET_DAYS__"  # the days' filter on a daily table's `day` (alias t)
FROM_DAY = "__FROM_DAY__"        # the first day the changed days are looked for in

_EPOCH = "DATE '1970-01-01'"


def day_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """The days as runs of consecutive days: (first, last) each, in order."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _event_range(first: str, after: str) -> str:
    return f"`timestamp` >= TIMESTAMP '{first}' AND `timestamp` < TIMESTAMP '{after}'"


def _request_range(first: str, after: str) -> str:
    return f"received_at >= TIMESTAMP '{first}' AND received_at < TIMESTAMP '{after}'"


def _target_range(first: str, last: str) -> str:
    return f"t.day BETWEEN DATE '{first}' AND DATE '{last}'"


def day_filters(days: Iterable[date]) -> dict[str, str]:
    """The literal text of EVENT_DAYS, REQUEST_DAYS and TARGET_DAYS for these days (FALSE for none)."""
    runs = day_runs(days)
    return {
        EVENT_DAYS: " OR ".join(_event_range(a.isoformat(), (b + timedelta(days=1)).isoformat()) for a, b in runs)
        or "FALSE",
        REQUEST_DAYS: " OR ".join(_request_range(a.isoformat(), (b + timedelta(days=1)).isoformat())
                                  for a, b in runs) or "FALSE",
        TARGET_DAYS: " OR ".join(_target_range(a.isoformat(), b.isoformat()) for a, b in runs) or "FALSE",
    }


def _sql_text(template: str) -> str:
    """GoogleSQL: a CONCAT of the template's text, with `{first}`, `{after}` and `{last}` as DATE expressions."""
    parts = re.split(r"\{(first|after|last)\}", template)
    exprs = {"first": "first", "last": "last", "after": "DATE_ADD(last, INTERVAL 1 DAY)"}
    pieces = [f'"{p}"' if i % 2 == 0 else f"CAST({exprs[p]} AS STRING)" for i, p in enumerate(parts) if p]
    return f"CONCAT({', '.join(pieces)})"


def _runs_sql(template: str) -> str:
    """GoogleSQL computing in the script what `day_filters` computes here, from the variable `days`."""
    return (f"(SELECT IFNULL(STRING_AGG({_sql_text(template)}, ' OR ' ORDER BY first), 'FALSE') FROM (\n"
            "    SELECT MIN(d) AS first, MAX(d) AS last FROM (\n"
            f"      SELECT d, DATE_DIFF(d, {_EPOCH}, DAY) - ROW_NUMBER() OVER (ORDER BY d) AS run\n"
            "      FROM (SELECT DISTINCT d FROM UNNEST(days) AS d))\n"
            "    GROUP BY run))")


FILTERS_SQL = {EVENT_DAYS: _runs_sql(_event_range("{first}", "{after}")),
               REQUEST_DAYS: _runs_sql(_request_range("{first}", "{after}")),
               TARGET_DAYS: _runs_sql(_target_range("{first}", "{last}"))}
_FILTER_VARIABLES = {EVENT_DAYS: "event_days", REQUEST_DAYS: "request_days", TARGET_DAYS: "target_days"}


def _names(table: TableDef, prefix: str = "") -> str:
    return ", ".join(f"{prefix}`{c.name}`" for c in table.columns)


def _replace(table: TableDef, ds: str, source: str, scope: str | None) -> str:
    """One atomic MERGE: the source's rows replace the target's rows (on the rows `scope` selects, if given)."""
    condition = f" AND ({scope})" if scope else ""
    return (f"MERGE `{ds}.{table.name}` AS t\nUSING ({source}\n) AS s\nON FALSE\n"
            f"WHEN NOT MATCHED BY SOURCE{condition} THEN DELETE\n"
            f"WHEN NOT MATCHED THEN INSERT ({_names(table)}) VALUES ({_names(table, 's.')})")


def _daily_merges(ds: str, filters: dict[str, str]) -> list[str]:
    """Each daily table's MERGE, its days given by `filters` (literal text, or the holes themselves)."""
    merges = []
    for table in DAILY_TABLES:
        columns, query = _SOURCES[table.name]
        events = _EVENTS_OF_DAYS.format(ds=ds, columns=f",\n    {columns}", event_days=filters[EVENT_DAYS])
        merges.append(_replace(table, ds, query.format(events=events), scope=filters[TARGET_DAYS]))
    return merges


def _triple_quoted(text: str) -> str:
    if '"""' in text or "\\" in text or ";\n" in text:
        raise ValueError("not a statement this script can quote")
    return f'"""{text}"""'


def _dynamic(template: str, holes: dict[str, str]) -> str:
    """EXECUTE IMMEDIATE of the template, each hole replaced by the value of its SQL expression."""
    text = _triple_quoted(template)
    for hole, value in holes.items():
        text = f"REPLACE({text}, '{hole}', {value})"
    return f"EXECUTE IMMEDIATE {text}"


def _statements(ds: str, filters: dict[str, str] | None) -> list[str]:
    """The rebuild of every aggregate for the days `filters` names (None: the script variable `days`).

    The daily tables change together in one transaction. `instances` follows outside it: inside a
    transaction a materialized view is read like a logical view, i.e. computed over all of `events`; then
    `daily_ingestion_health`, which names instances by license from `instances`.
    """
    def health(given: dict[str, str]) -> str:
        return _replace(DAILY_INGESTION_HEALTH, ds, health_source(ds, given[REQUEST_DAYS], given[EVENT_DAYS]),
                        scope=given[TARGET_DAYS])

    if filters is None:  # days known only at run time: each MERGE's text gets them as literals first
        holes = dict(_FILTER_VARIABLES)
        merges = [_dynamic(m, holes) for m in _daily_merges(ds, {h: h for h in holes})]
        health_merge = _dynamic(health({h: h for h in holes}), holes)
    else:
        merges, health_merge = _daily_merges(ds, filters), health(filters)
    return ["BEGIN TRANSACTION", *merges, "COMMIT TRANSACTION",
            _replace(INSTANCES, ds, _INSTANCES_SOURCE.format(ds=ds), scope=None), health_merge]


def _script(ds: str, kind: str, head: list[str], filters: dict[str, str] | None) -> str:
    """`head` (its DECLAREs first: BigQuery wants them first) leaves the days in `days`; then the rebuild."""
    record = (f"INSERT INTO `{ds}.{AGGREGATE_RUNS.name}` ({_names(AGGREGATE_RUNS)}) "
              f"VALUES ('{kind}', run_started, CURRENT_TIMESTAMP(), IFNULL(days, []))")
    answer = "SELECT IFNULL(days, []) AS days"  # a script's result is its last statement's: this run's days
    return ";\n".join([*head, *_statements(ds, filters), record, answer]) + ";\n"


def refresh_script(ds: str, overlap_minutes: int = OVERLAP_MINUTES, lookback_days: int = LOOKBACK_DAYS) -> str:
    """The scheduled query: rebuild the days that received rows since the last refresh (first run: all days).

    Finding the days reads `timestamp` and `inserted_at` from the first day of the lookback on (its date a
    literal in the executed text); each daily MERGE then reads exactly those days' partitions.
    """
    find = f"""SELECT ARRAY_AGG(DISTINCT d ORDER BY d) FROM (
      SELECT DATE(`timestamp`) AS d FROM `{ds}.events`
      WHERE `timestamp` >= TIMESTAMP '{FROM_DAY}' AND (? IS NULL OR inserted_at >= ?)
      UNION ALL
      SELECT DATE(received_at) FROM `{ds}.requests`
      WHERE received_at >= TIMESTAMP '{FROM_DAY}' AND (? IS NULL OR inserted_at >= ?))"""
    from_day = (f"CAST(DATE_SUB(DATE(run_started), INTERVAL IF(since IS NULL, {FIRST_RUN_LOOKBACK_DAYS}, "
                f"{int(lookback_days)}) DAY) AS STRING)")
    head = [
        "DECLARE run_started TIMESTAMP DEFAULT CURRENT_TIMESTAMP()",
        f"DECLARE since TIMESTAMP DEFAULT (SELECT TIMESTAMP_SUB(MAX(started_at), INTERVAL {int(overlap_minutes)} "
        f"MINUTE) FROM `{ds}.{AGGREGATE_RUNS.name}` WHERE kind = 'refresh')",
        "DECLARE days ARRAY<DATE>",
        *(f"DECLARE {variable} STRING" for variable in _FILTER_VARIABLES.values()),  # the days' filters, as
        f"{_dynamic(find, {FROM_DAY: from_day})} INTO days USING since, since, since, since",  # literals
        *(f"SET {variable} = {FILTERS_SQL[hole]}" for hole, variable in _FILTER_VARIABLES.items()),
    ]
    return _script(ds, "refresh", head, filters=None)


def rebuild_script(ds: str, days: list[date]) -> str:
    """Rebuild exactly these days (after an erasure, or for late rows older than the refresh looks back)."""
    literal = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(set(days)))
    head = ["DECLARE run_started TIMESTAMP DEFAULT CURRENT_TIMESTAMP()",
            f"DECLARE days ARRAY<DATE> DEFAULT {f'[{literal}]' if literal else 'CAST(NULL AS ARRAY<DATE>)'}"]
    return _script(ds, "rebuild", head, filters=day_filters(days))


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


