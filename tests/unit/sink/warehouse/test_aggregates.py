"""The analysts' aggregates: what BigQuery's materialized-view rules require (docs/analysts.md cites them).

The numbers are checked on the emulator (tests/integration/test_aggregates.py); these pin what the emulator
cannot judge.
"""

from __future__ import annotations

import re

from shared.sink.warehouse import aggregates

DS = "proj.telemetry"
# https://docs.cloud.google.com/bigquery/docs/materialized-views-create ("Aggregate requirements")
MV_AGGREGATES = {"ANY_VALUE", "APPROX_COUNT_DISTINCT", "ARRAY_AGG", "AVG", "BIT_AND", "BIT_OR", "BIT_XOR", "COUNT",
                 "COUNTIF", "HLL_COUNT.INIT", "LOGICAL_AND", "LOGICAL_OR", "MAX", "MIN", "MAX_BY", "MIN_BY", "SUM"}
SCALARS = {"TIMESTAMP_TRUNC"}


def test_the_materialized_view_keeps_to_what_an_incremental_view_may_hold():
    sql = aggregates.materialized_view_query(DS)
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
