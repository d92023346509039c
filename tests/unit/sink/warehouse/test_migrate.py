"""Live table vs definition: at most two metadata updates, none when the table is current."""

from __future__ import annotations

from shared.sink.warehouse.migrate import DAY_MS, LiveTable, migration
from shared.sink.warehouse.tables import EVENTS

NAMES = frozenset(c.name for c in EVENTS.columns)


def test_a_current_table_needs_nothing():
    assert migration(EVENTS, "p.d.events", LiveTable(NAMES, 730 * DAY_MS), 730) == []


def test_missing_columns_are_one_statement_and_a_changed_expiration_another():
    live = LiveTable(NAMES - {"caller_email", "redacted_fields", "service_environment"}, 30 * DAY_MS)
    add, expire = migration(EVENTS, "p.d.events", live, 730)
    assert add.startswith("ALTER TABLE `p.d.events`") and add.count("ADD COLUMN IF NOT EXISTS") == 3
    assert "`redacted_fields` ARRAY<STRING>" in add
    assert expire == "ALTER TABLE `p.d.events` SET OPTIONS (partition_expiration_days = 730)"


def test_the_sink_leaves_options_alone():
    assert migration(EVENTS, "p.d.events", LiveTable(NAMES, None)) == []


def test_from_the_api_resource():
    live = LiveTable.from_resource({"schema": {"fields": [{"name": "a"}]}, "timePartitioning": {"expirationMs": "5"}})
    assert live == LiveTable(frozenset({"a"}), 5)
    assert LiveTable.from_resource({}) == LiveTable(frozenset(), None)
