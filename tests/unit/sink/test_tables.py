"""Table definitions: the additive-migration rule and the one migration statement."""

from __future__ import annotations

import pytest

from shared.sink.tables import EVENTS, REJECTED, TableDef, add_column_statements

# The columns of the first release, in order. A column added after it must come last and be NULLABLE
# (`bq update` and ALTER TABLE add columns at the end; neither can add a REQUIRED column).
FIRST_RELEASE = {
    "events": ["event_id", "timestamp", "feature", "action", "instance_id", "external_url", "license_fingerprint",
               "license_tags", "environment", "server_version", "client_name", "client_version",
               "parameters_version", "metadata", "private_metadata", "billing_product", "billing_category",
               "user_id", "anonymous_user_id", "sams_external_id", "feature_flags", "marketing_tracking",
               "interaction_trace_id", "interaction_id", "country_code", "extra", "request_id", "message_id",
               "received_at", "published_at", "caller_kind", "inserted_at"],
    "rejected_events": ["rejection_id", "reason", "detail", "event_id", "raw_event", "event_index", "instance_id",
                        "external_url", "license_fingerprint", "license_tags", "environment", "request_id",
                        "message_id", "received_at", "published_at", "caller_kind", "rejected_at", "replayed_at"],
}


def later_columns_problems(table: TableDef, first: list[str]) -> list[str]:
    names = [c.name for c in table.columns]
    problems = [] if names[: len(first)] == first else [f"{table.name}: first-release columns changed or moved"]
    return problems + [f"{table.name}.{c.name} is REQUIRED" for c in table.columns[len(first):] if c.mode == "REQUIRED"]


@pytest.mark.parametrize("table", [EVENTS, REJECTED], ids=lambda t: t.name)
def test_columns_added_after_the_first_release_are_nullable_and_last(table):
    assert later_columns_problems(table, FIRST_RELEASE[table.name]) == []


def test_the_rule_catches_a_column_inserted_in_the_middle_or_required():
    from dataclasses import replace

    from shared.sink.tables import Column

    moved = replace(EVENTS, columns=(EVENTS.columns[0], Column("new", "STRING", "x"), *EVENTS.columns[1:]))
    required = replace(EVENTS, columns=(*EVENTS.columns, Column("new", "STRING", "x", "REQUIRED")))
    assert later_columns_problems(moved, FIRST_RELEASE["events"])[0] == "events: first-release columns changed or moved"
    assert later_columns_problems(required, FIRST_RELEASE["events"]) == ["events.new is REQUIRED"]


def test_migration_statements_add_nullable_columns_only():
    statements = add_column_statements(EVENTS, "p.d.events")
    assert statements[0] == "ALTER TABLE `p.d.events` ADD COLUMN IF NOT EXISTS `instance_id` STRING"
    assert "ADD COLUMN IF NOT EXISTS `license_tags` ARRAY<STRING>" in "\n".join(statements)
    assert not [s for s in statements if "`event_id`" in s or "`inserted_at`" in s]  # REQUIRED: exist since creation
    with pytest.raises(ValueError, match="REQUIRED"):
        add_column_statements(EVENTS, "p.d.events", ["event_id"])
