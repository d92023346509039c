"""What operators watch (deploy/): each chart computes what its title says, from the right resource."""

from __future__ import annotations

import json
import re

import pytest

from devtools.procs import ROOT
from shared.envelope import POISON_REASONS
from tools.settings import settings_file

DEPLOY = ROOT / "deploy"
# Cloud Monitoring aligners that turn a distribution into a number ("Percentiles and distribution-valued
# metrics"): ALIGN_SUM/REDUCE_SUM of a distribution is a distribution, not a count.
NUMERIC_FROM_DISTRIBUTION = re.compile(r"ALIGN_PERCENTILE_\d+|ALIGN_COUNT|ALIGN_MEAN")


def distribution_metrics() -> set[str]:
    return {p.stem for p in (DEPLOY / "metrics").glob("*.yaml") if "valueType: DISTRIBUTION" in p.read_text()}


def datasets() -> list[tuple[str, dict]]:
    board = json.loads((DEPLOY / "dashboard.json").read_text())
    return [(tile["widget"]["title"], ds["timeSeriesQuery"]) for tile in board["mosaicLayout"]["tiles"]
            for ds in tile["widget"].get("xyChart", {}).get("dataSets", [])]


def test_there_are_distribution_metrics_to_check():
    assert {"telemetry_accepted_events", "telemetry_sink_rejected_events"} <= distribution_metrics()


def charting_a_distribution() -> list[tuple[str, dict, str, str]]:
    """(title, query, metric, how) of each chart reading a distribution metric: through a filter or through PromQL."""
    found = []
    for title, query in datasets():
        text = query.get("timeSeriesFilter", {}).get("filter", "") + query.get("prometheusQuery", "")
        for metric in sorted(distribution_metrics()):
            if f"user/{metric}\"" in text:
                found.append((title, query, metric, "filter"))
            if f"user_{metric}_" in text:
                found.append((title, query, metric, "promql"))
    return found


def test_the_dashboard_charts_distribution_metrics():
    assert {metric for _, _, metric, _ in charting_a_distribution()} >= {"telemetry_accepted_events"}


@pytest.mark.parametrize(("title", "query", "metric", "how"), charting_a_distribution(),
                         ids=[f"{t}-{m}" for t, _, m, _ in charting_a_distribution()])
def test_a_distribution_is_charted_as_a_number(title, query, metric, how):
    """A count comes from the distribution's `_sum` series (PromQL mapping), else a percentile aligner."""
    if how == "filter":
        aligner = query["timeSeriesFilter"]["aggregation"]["perSeriesAligner"]
        assert NUMERIC_FROM_DISTRIBUTION.fullmatch(aligner), (title, aligner)
    else:
        assert re.search(rf"logging_googleapis_com:user_{metric}_(sum|count)\b", query["prometheusQuery"]), title


def test_sink_lag_watches_the_sinks_own_subscription():
    """Not the dead-letter pull subscription or any other: deploy.sh fills in the trigger's subscription."""
    (lag,) = [q for t, q in datasets() if "oldest_unacked_message_age" in json.dumps(q)]
    assert 'resource.label.subscription_id="__SINK_SUBSCRIPTION__"' in lag["timeSeriesFilter"]["filter"]
    assert "__SINK_SUBSCRIPTION__" in (ROOT / "deploy.sh").read_text()


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_aggregates_schedule_is_off_the_hour(environment):
    """Scheduled queries running exactly on the hour might trigger multiple times (Scheduling queries)."""
    schedule = settings_file(environment)["AGGREGATES_SCHEDULE"]
    times = re.findall(r"\b(\d\d):(\d\d)\b", schedule)
    assert times and all(minute != "00" for _, minute in times), schedule


def test_the_edge_charts_count_what_cloud_armor_did_by_rule():
    """Allowed, throttled and banned, by rule priority, from the metric over the load balancer's request logs; the
    metric extracts exactly the fields the charts filter and group on."""
    metric = (DEPLOY / "metrics" / "edge" / "telemetry_edge_requests.yaml").read_text()
    for label, field in (("rule", "priority"), ("outcome", "outcome"), ("rate_limit", "rateLimitAction.outcome")):
        assert f"{label}: EXTRACT(jsonPayload.enforcedSecurityPolicy.{field})" in metric
    assert 'resource.type="http_load_balancer"' in metric
    tiles = json.loads((DEPLOY / "dashboard-edge.json").read_text())["tiles"]
    wanted = {"allowed": 'metric.label.outcome="ACCEPT"',
              "throttled": 'metric.label.rate_limit="RATE_LIMIT_THRESHOLD_EXCEED"',
              "banned": 'metric.label.rate_limit="BAN_THRESHOLD_EXCEED"'}
    for word, condition in wanted.items():
        (tile,) = [t for t in tiles if f"requests {word}" in t["widget"]["title"]]
        (query,) = [d["timeSeriesQuery"]["timeSeriesFilter"] for d in tile["widget"]["xyChart"]["dataSets"]]
        assert "user/telemetry_edge_requests" in query["filter"] and condition in query["filter"], word
        assert query["aggregation"]["groupByFields"] == ["metric.label.rule"], word
    (paths,) = [t for t in tiles if "through the load balancer" in t["widget"]["title"]]
    filters = [d["timeSeriesQuery"]["timeSeriesFilter"]["filter"] for d in paths["widget"]["xyChart"]["dataSets"]]
    assert ['resource.label.url_map_name="__EDGE_URL_MAP__"' in f for f in filters] == [True, False]
    assert 'resource.label.service_name="__INGEST__"' in filters[1]


def test_the_dead_letter_alert_names_every_poison_reason_code():
    text = json.loads((DEPLOY / "alert-dead-letter.json").read_text())["documentation"]["content"]
    named = set(re.findall(r"`([a-z_0-9]+)`", text.split("poison_message", 1)[1]))
    assert named >= set(POISON_REASONS), set(POISON_REASONS) - named


def test_the_runbook_s_table_of_poison_reasons_is_the_code_s():
    doc = (ROOT / "docs" / "operations.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_0-9]+)` \| (.+?) \|$", doc, re.MULTILINE))
    assert {code: rows.get(code) for code in POISON_REASONS} == POISON_REASONS
