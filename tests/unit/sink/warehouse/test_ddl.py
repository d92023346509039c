"""The warehouse's SQL text."""

from __future__ import annotations

import pytest

from shared.sink.warehouse import TABLES, fresh_statements
from shared.sink.warehouse.ddl import add_columns_sql, create_table_sql, grant_sql, sql_string
from shared.sink.warehouse.tables import EVENTS


def test_added_columns_are_one_statement_of_nullable_columns():
    sql = add_columns_sql("p.d.events", [EVENTS.column("license_tags"), EVENTS.column("extra")])
    assert sql == ("ALTER TABLE `p.d.events`\n  ADD COLUMN IF NOT EXISTS `license_tags` ARRAY<STRING>,\n"
                   "  ADD COLUMN IF NOT EXISTS `extra` JSON")
    with pytest.raises(ValueError, match="REQUIRED"):
        add_columns_sql("p.d.events", [EVENTS.column("event_id")])


def test_create_table_carries_partitioning_clustering_and_expiration():
    sql = create_table_sql(EVENTS, "p.d.events", 730)
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `p.d.events`") and "`event_id` STRING NOT NULL" in sql
    assert "PARTITION BY `timestamp`" in sql and "partition_expiration_days = 730" in sql


def test_strings_and_grants_are_quoted():
    assert sql_string("it's a \\ path") == "'it\\'s a \\\\ path'"
    with pytest.raises(ValueError):
        grant_sql("roles/x", "p.d", 'user:"a"')


def test_a_fresh_dataset_gets_every_table_and_view():
    statements = fresh_statements("p.d", lambda setting: 7, materialized=False)
    assert [s.split("`")[1] for s in statements[: len(TABLES)]] == [f"p.d.{t.name}" for t in TABLES]
    assert any(s.startswith("CREATE OR REPLACE VIEW `p.d.daily_active_instances`") for s in statements)
    assert any(s.startswith("CREATE OR REPLACE VIEW `p.d.events_deduped`") for s in statements)
