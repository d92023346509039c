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


# Holes in the text of the refresh's dynamic statements, filled in the script (and by `executed_statements`).
EVENT_DAYS = "__EVENT_DAYS__"    # the days' filter on events.`timestamp`
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


def _target_range(first: str, last: str) -> str:
    return f"t.day BETWEEN DATE '{first}' AND DATE '{last}'"


def day_filters(days: Iterable[date]) -> dict[str, str]:
    """The literal text of EVENT_DAYS and TARGET_DAYS for these days (FALSE for none)."""
    runs = day_runs(days)
    return {
        EVENT_DAYS: " OR ".join(_event_range(a.isoformat(), (b + timedelta(days=1)).isoformat()) for a, b in runs)
        or "FALSE",
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
               TARGET_DAYS: _runs_sql(_target_range("{first}", "{last}"))}
_FILTER_VARIABLES = {EVENT_DAYS: "event_days", TARGET_DAYS: "target_days"}


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
    transaction a materialized view is read like a logical view, i.e. computed over all of `events`.
    """
    if filters is None:  # days known only at run time: each MERGE's text gets them as literals first
        holes = {h: _FILTER_VARIABLES[h] for h in (EVENT_DAYS, TARGET_DAYS)}
        merges = [_dynamic(m, holes) for m in _daily_merges(ds, {h: h for h in holes})]
    else:
        merges = _daily_merges(ds, filters)
    return ["BEGIN TRANSACTION", *merges, "COMMIT TRANSACTION",
            _replace(INSTANCES, ds, _INSTANCES_SOURCE.format(ds=ds), scope=None)]


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
    find = f"""SELECT ARRAY_AGG(DISTINCT DATE(`timestamp`) ORDER BY DATE(`timestamp`))
    FROM `{ds}.events`
    WHERE `timestamp` >= TIMESTAMP '{FROM_DAY}'
      AND (? IS NULL OR inserted_at >= ?)"""
    from_day = (f"CAST(DATE_SUB(DATE(run_started), INTERVAL IF(since IS NULL, {FIRST_RUN_LOOKBACK_DAYS}, "
                f"{int(lookback_days)}) DAY) AS STRING)")
    head = [
        "DECLARE run_started TIMESTAMP DEFAULT CURRENT_TIMESTAMP()",
        f"DECLARE since TIMESTAMP DEFAULT (SELECT TIMESTAMP_SUB(MAX(started_at), INTERVAL {int(overlap_minutes)} "
        f"MINUTE) FROM `{ds}.{AGGREGATE_RUNS.name}` WHERE kind = 'refresh')",
        "DECLARE days ARRAY<DATE>",
        "DECLARE event_days STRING",  # the days' filters, written with literals (day_filters)
        "DECLARE target_days STRING",
        f"{_dynamic(find, {FROM_DAY: from_day})} INTO days USING since, since",
        f"SET event_days = {FILTERS_SQL[EVENT_DAYS]}",
        f"SET target_days = {FILTERS_SQL[TARGET_DAYS]}",
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


