"""The cost model (bench/cost.py): the edge's prices, fixed monthly and per million events; the request log's."""

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


LOGGED = {"ingest_s_per_request": 2e-5, "sink_s_per_request": 1e-5, "row_bytes": 400, "message_bytes_per_row": 50,
          "single_row_message_bytes": 450}


def test_the_request_log_alone_pays_a_sink_invocation_and_pubsub_s_minimum_per_row():
    """1M events in 500-event requests: 2,000 rows; alone, 2,000 messages each billed 1,000 bytes twice and one
    sink invocation rounded up to 100 ms."""
    idle = cost.request_log_per_million_events(LOGGED, 1)
    assert idle["pubsub"] == pytest.approx(2 * 2000 * 1000 / 1024**4 * 40)
    sink_invocation = 0.1 * (1 / 3 * 0.000024 + 0.5 * 0.0000025) + 0.4e-6
    assert idle["functions"] == pytest.approx(2000 * 2e-5 * 0.000024 + 2000 * sink_invocation)
    assert idle["bigquery"] == pytest.approx(2000 * 400 / 1024**3 * 0.025)


def test_the_request_log_together_shares_messages_and_invocations():
    busy = cost.request_log_per_million_events(LOGGED, 100)
    assert busy["pubsub"] == pytest.approx(2 * 20 * 5000 / 1024**4 * 40)  # 20 messages of 100 rows x 50 B
    assert busy["total"] < cost.request_log_per_million_events(LOGGED, 1)["total"] / 20
