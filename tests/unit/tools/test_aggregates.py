"""The aggregates' SQL: what BigQuery's rules require of it (docs/analysts.md cites them), checked as text.

The numbers are checked on the emulator (tests/integration/test_aggregates.py); these pin what the emulator
cannot judge: materialized-view rules, partition pruning by the script variable, atomic replacement.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date

import pytest

from shared.tools import aggregates
from tests.unit.sink.test_tables import later_columns_problems

DS = "proj.telemetry"
FIRST_RELEASE = {
    "daily_feature_usage": ["day", "feature", "action", "client_name", "client_version", "events", "instances",
                            "instances_sketch", "users", "users_sketch"],
    "daily_active_users": ["day", "instance_id", "users", "users_sketch", "events", "events_without_user", "clients"],
    "daily_metadata_keys": ["day", "feature", "action", "parameters_version", "key", "events", "integer_events",
                            "value_sum", "min_value", "max_value"],
    "instances": ["instance_id", "first_seen", "last_seen", "last_event", "server_version", "server_versions",
                  "license_fingerprint", "external_url", "caller_kind", "active_days_28", "as_of"],
    "aggregate_runs": ["kind", "started_at", "finished_at", "days"],
}
# https://docs.cloud.google.com/bigquery/docs/materialized-views-create ("Aggregate requirements")
MV_AGGREGATES = {"ANY_VALUE", "APPROX_COUNT_DISTINCT", "ARRAY_AGG", "AVG", "BIT_AND", "BIT_OR", "BIT_XOR", "COUNT",
                 "COUNTIF", "HLL_COUNT.INIT", "LOGICAL_AND", "LOGICAL_OR", "MAX", "MIN", "MAX_BY", "MIN_BY", "SUM"}
SCALARS = {"TIMESTAMP_TRUNC"}


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


@pytest.mark.parametrize("table", aggregates.TABLES, ids=lambda t: t.name)
def test_columns_added_later_are_nullable_and_last(table):
    assert later_columns_problems(table, FIRST_RELEASE[table.name]) == []


def test_the_materialized_view_keeps_to_what_an_incremental_view_may_hold():
    sql = aggregates.materialized_view_sql(DS)
    calls = {m.upper() for m in re.findall(r"([A-Za-z_.]+)\s*\(", sql)}
    assert calls - SCALARS <= MV_AGGREGATES, calls - SCALARS - MV_AGGREGATES
    assert not re.search(r"\bOVER\b|\bDISTINCT\b|CURRENT_|\bJOIN\b", sql, re.I)  # no window, no non-determinism
    assert re.findall(r"FROM `([^`]+)`", sql) == [f"{DS}.events"]  # the base table, never a logical view
    ddl = aggregates.materialized_view_ddl(DS)
    assert ddl.startswith(f"DROP MATERIALIZED VIEW IF EXISTS `{DS}.daily_active_instances`;\nCREATE MATERIALIZED")
    # Partitioned like the base table: a DAY truncation of its partitioning column, partitioned by DATE() of it.
    assert "TIMESTAMP_TRUNC(`timestamp`, DAY) AS day_start" in sql and "PARTITION BY DATE(day_start)" in ddl
    assert "GROUP BY day_start, instance_id" in sql and "CLUSTER BY instance_id" in ddl
    assert aggregates.MATERIALIZED_VIEW_COLUMNS == (
        "day_start", "instance_id", "license_fingerprint", "external_url", "caller_kind", "first_server_version",
        "server_version", "first_event", "last_event")


def test_the_definition_label_follows_the_query(monkeypatch):
    label = aggregates.definition_label(DS)
    assert f"('definition', '{label}')" in aggregates.materialized_view_ddl(DS)
    assert aggregates.definition_label("other.dataset") != label
    monkeypatch.setattr(aggregates, "MATERIALIZED_VIEW_SQL", aggregates.MATERIALIZED_VIEW_SQL + "\n-- changed")
    assert aggregates.definition_label(DS) != label
    monkeypatch.undo()
    monkeypatch.setattr(aggregates, "MATERIALIZED_VIEW_DESCRIPTION", "options count too")
    assert aggregates.definition_label(DS) != label


@pytest.mark.parametrize(("shown", "rc"), [
    ("{labels}", 0), ('{"labels": {"definition": "0000"}}', 1), ("{}", 1), ("not json", 1), ("", 1)])
def test_mv_current_compares_the_live_label(monkeypatch, capsys, shown, rc):
    shown = shown.replace("{labels}", json.dumps({"labels": {"definition": aggregates.definition_label(DS)}}))
    monkeypatch.setattr("sys.stdin", io.StringIO(shown))
    assert aggregates.main(["mv-current", DS]) == rc


def test_the_refresh_rebuilds_the_days_named_by_one_variable():
    parts = statements(aggregates.refresh_script(DS))
    declares = [p for p in parts if p.startswith("DECLARE")]
    assert parts[: len(declares)] == declares  # BigQuery wants every DECLARE first
    assert [d.split()[1] for d in declares] == ["run_started", "since", "days", "first_day", "last_day"]
    assert f"INTERVAL {aggregates.OVERLAP_MINUTES} MINUTE" in declares[1] and "kind = 'refresh'" in declares[1]
    assert "inserted_at >= since" in declares[2]
    merges = [p for p in parts if p.startswith("MERGE")]
    targets = (*aggregates.DAILY_TABLES, aggregates.INSTANCES)
    assert [m.split("`")[1] for m in merges] == [f"{DS}.{t.name}" for t in targets]
    for merge in merges[:-1]:
        # The source reads events through constants (the variables), so BigQuery prunes partitions; the target
        # loses only the rebuilt days' rows, in the same statement that writes their new ones.
        assert "`timestamp` >= TIMESTAMP(first_day) AND `timestamp` < TIMESTAMP(DATE_ADD(last_day" in merge
        assert "DATE(`timestamp`) IN UNNEST(days)" in merge
        assert "WHEN NOT MATCHED BY SOURCE AND t.day IN UNNEST(days) THEN DELETE" in merge
        assert "GROUP BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action" in merge
        assert "SELECT" not in merge.split("WHERE", 1)[1].split("GROUP BY")[0]  # no subquery in the filter
    assert "WHEN NOT MATCHED BY SOURCE THEN DELETE" in merges[-1]  # instances: replaced whole
    # The daily tables change together; instances after the commit (in a transaction a materialized view is
    # read like a logical view, over all of events); the watermark moves last; the result is the days.
    daily = [parts.index(m) for m in merges[:-1]]
    assert parts[min(daily) - 1] == "BEGIN TRANSACTION" and parts[max(daily) + 1] == "COMMIT TRANSACTION"
    assert parts.index(merges[-1]) == max(daily) + 2
    assert parts[-2].startswith(f"INSERT INTO `{DS}.aggregate_runs`")
    assert parts[-1] == "SELECT IFNULL(days, []) AS days"


def test_the_lookback_follows_the_deployed_event_age_limit(capsys):
    assert "INTERVAL IF(since IS NULL, 3650,\n" in aggregates.refresh_script(DS)
    assert aggregates.main(["script", DS, "--event-max-age-days", "1000"]) == 0
    assert f"{1000 + aggregates.LOOKBACK_SLACK_DAYS}) DAY)" in capsys.readouterr().out
    assert f"{aggregates.LOOKBACK_DAYS}) DAY)" in aggregates.refresh_script(DS)


def test_find_config_matches_the_name_and_the_data_source(monkeypatch, capsys):
    configs = [{"name": "projects/1/locations/us/transferConfigs/9", "displayName": "agg", "dataSourceId": "x"},
               {"name": "projects/1/locations/us/transferConfigs/2", "displayName": "agg",
                "dataSourceId": "scheduled_query"},
               {"name": "projects/1/locations/us/transferConfigs/1", "displayName": "other"}]
    assert aggregates.find_configs(configs, "agg") == ["projects/1/locations/us/transferConfigs/2"]
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(configs * 2)))
    assert aggregates.main(["find-config", "agg"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "projects/1/locations/us/transferConfigs/2" and "2 scheduled queries" in out.err


def test_a_rebuild_names_its_days_and_leaves_the_watermark_alone():
    script = aggregates.rebuild_script(DS, [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 3)])
    assert "DEFAULT (SELECT [DATE '2026-01-01', DATE '2026-01-03'])" in script
    assert "since" not in script and "VALUES ('rebuild'" in script
    assert "CAST(NULL AS ARRAY<DATE>)" in aggregates.rebuild_script(DS, [])


def test_the_cli_prints_the_scheduled_query_and_the_tables(capsys):
    assert aggregates.main(["params", DS]) == 0
    assert json.loads(capsys.readouterr().out) == {"query": aggregates.refresh_script(DS)}
    assert aggregates.main(["tables", DS, "730"]) == 0
    out = capsys.readouterr().out
    for table in aggregates.TABLES:
        assert f"CREATE TABLE IF NOT EXISTS `{DS}.{table.name}`" in out
    assert out.count("partition_expiration_days = 730") == 2 * len(aggregates.DAILY_TABLES)  # create + redeploy
    assert f"CREATE OR REPLACE VIEW `{DS}.metadata_keys`" in out
    with pytest.raises(SystemExit):
        aggregates.main(["rebuild", "--from", "2026-01-02", "--to", "2026-01-01"])


def test_day_ranges():
    assert aggregates._day_range("2026-01-30", "2026-02-01") == [date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1)]
    assert aggregates._day_range("2026-01-30", None) == [date(2026, 1, 30)]
    with pytest.raises(ValueError, match="on or after"):
        aggregates._day_range("2026-01-02", "2026-01-01")
