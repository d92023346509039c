"""Table definitions: every table's first-release columns are pinned; later columns are NULLABLE and last."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.sink.warehouse import TABLES
from shared.sink.warehouse.columns import Column, TableDef
from shared.sink.warehouse.tables import EVENTS

# The columns of each table's first release, in order. A column added after it must come last and be NULLABLE
# (ALTER TABLE adds columns at the end and cannot add a REQUIRED column).
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
    "requests": ["record_id", "received_at", "outcome", "status", "error_code", "caller_kind", "instance_id",
                 "license_fingerprint", "environment", "request_id", "events", "accepted", "refused", "redacted",
                 "warnings", "wire_bytes", "body_bytes", "format", "content_encoding", "handling_ms",
                 "earliest_event", "latest_event", "user_agent", "suppressed", "suppressed_by_code", "inserted_at"],
    "daily_feature_usage": ["day", "feature", "action", "client_name", "client_version", "events", "instances",
                            "instances_sketch", "users", "users_sketch"],
    "daily_active_users": ["day", "instance_id", "users", "users_sketch", "events", "events_without_user", "clients"],
    "daily_metadata_keys": ["day", "feature", "action", "parameters_version", "key", "events", "integer_events",
                            "value_sum", "min_value", "max_value"],
    "instances": ["instance_id", "first_seen", "last_seen", "last_event", "server_version", "server_versions",
                  "license_fingerprint", "external_url", "caller_kind", "active_days_28", "as_of"],
    "daily_ingestion_health": ["day", "instance_id", "requests", "accepted_requests", "events_sent", "events_accepted",
                               "refused", "redacted", "warnings", "unauthorized_401", "forbidden_403",
                               "too_large_413", "throttled_429", "other_refused", "failed_5xx", "suppressed",
                               "lateness_p50_s", "lateness_p95_s", "server_version", "last_request_at"],
    "aggregate_runs": ["kind", "started_at", "finished_at", "days"],
}


def later_columns_problems(table: TableDef, first: list[str]) -> list[str]:
    names = [c.name for c in table.columns]
    problems = [] if names[: len(first)] == first else [f"{table.name}: first-release columns changed or moved"]
    return problems + [f"{table.name}.{c.name} is REQUIRED" for c in table.columns[len(first):] if c.mode == "REQUIRED"]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_columns_added_after_the_first_release_are_nullable_and_last(table):
    assert later_columns_problems(table, FIRST_RELEASE[table.name]) == []


def test_every_table_is_pinned():
    assert set(FIRST_RELEASE) == {t.name for t in TABLES}


def test_the_rule_catches_a_column_inserted_in_the_middle_or_required():
    moved = replace(EVENTS, columns=(EVENTS.columns[0], Column("new", "STRING", "x"), *EVENTS.columns[1:]))
    required = replace(EVENTS, columns=(*EVENTS.columns, Column("new", "STRING", "x", "REQUIRED")))
    assert later_columns_problems(moved, FIRST_RELEASE["events"])[0] == "events: first-release columns changed or moved"
    assert later_columns_problems(required, FIRST_RELEASE["events"]) == ["events.new is REQUIRED"]
