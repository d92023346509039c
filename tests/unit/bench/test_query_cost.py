"""The cost table in docs/analysts.md is what `python -m bench.query_cost` computes."""

from __future__ import annotations

from bench import query_cost
from devtools.procs import ROOT


def test_the_docs_print_the_computed_costs():
    sizes = query_cost.event_column_bytes()
    docs = (ROOT / "docs" / "analysts.md").read_text()
    for line in query_cost.table(sizes) + [f"- {x}" for x in query_cost.refresh_lines(sizes)]:
        assert line in docs, line


def test_logical_sizes_follow_bigquerys_rules():
    assert query_cost.logical_bytes("héllo", "STRING") == 2 + 6
    assert query_cost.logical_bytes(None, "STRING") == 0
    assert query_cost.logical_bytes(["ab", "c"], "STRING") == 4 + 3
    assert query_cost.logical_bytes('{"a":1}', "JSON") == 7
    assert query_cost.logical_bytes(123, "INT64") == query_cost.logical_bytes(0, "TIMESTAMP") == 8


def test_dedup_reads_the_window_columns_and_small_reads_pay_the_minimum():
    sizes = query_cost.event_column_bytes(200)
    raw = query_cost.read_bytes("events", ("timestamp", "feature"), 30, sizes)
    deduped = query_cost.read_bytes("events_deduped", ("timestamp", "feature"), 30, sizes)
    assert deduped > 2 * raw
    assert query_cost.read_bytes("instances", ("instance_id",), 1, sizes) == query_cost.MINIMUM_BILLED


def test_a_late_event_costs_its_own_partition_not_the_days_between():
    sizes = query_cost.event_column_bytes(200)
    late, between = query_cost.late_event_refresh_bytes(sizes)
    assert late == query_cost.refresh_bytes(sizes, 3)  # today, yesterday and the late event's day
    assert between == query_cost.refresh_bytes(sizes, query_cost.LATE_EVENT_AGE_DAYS + 1)
    assert late - query_cost.refresh_bytes(sizes, 2) < between / 100  # one partition more, not 299
