"""The cost model's edge prices (bench/cost.py): fixed monthly and per million events."""

from __future__ import annotations

import pytest

from bench import cost


def test_the_edge_costs_its_forwarding_rules_policy_and_rules_a_month():
    monthly = cost.edge_monthly()
    assert monthly["load_balancer"] == pytest.approx(0.025 * 730)  # two rules: within the first five
    assert monthly["cloud_armor"] == pytest.approx(5 + 5 * 1)
    assert cost.edge_monthly(forwarding_rules=7)["load_balancer"] == pytest.approx((0.025 + 2 * 0.01) * 730)


def test_the_edge_adds_data_processed_and_a_request_fee_per_event():
    """1M events in 500-event requests: 2,000 requests evaluated by Cloud Armor; every byte in and out processed."""
    per_million = cost.edge_per_million_events(request_bytes_per_event=100)
    assert per_million["cloud_armor"] == pytest.approx(2000 * 0.75 / 1e6)
    assert per_million["load_balancer"] == pytest.approx(1e6 * 139 / 1024**3 * 0.008)
    assert per_million["per_request"] == pytest.approx(per_million["total"] / 2000)
    smaller = cost.edge_per_million_events(request_bytes_per_event=100, batch=50)
    assert smaller["cloud_armor"] == pytest.approx(10 * per_million["cloud_armor"])  # ten times the requests
