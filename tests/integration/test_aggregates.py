"""The analysts' aggregates on the local pipeline: a known set of events in, every number checked exactly.

The set has duplicate deliveries, late events (one for a day 40 days back, after the first refresh), an
instance that upgrades mid-day, a user on two clients on the same day, and anonymous users. The refresh is
the scheduled query's own script, run against the BigQuery emulator (where the materialized view is a
plain view of the same query, and HLL sketches are exact sets: see devtools/bqemulator_serialized.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
import requests
from google.cloud import bigquery

from shared.ingest.licenses.keys import decode_license
from shared.sink.warehouse import aggregates, refresh
from tests.helpers import make_body, make_event
from tests.integration.rows import publish_batch, wait_rows

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
D40, D5, D3, D2 = (TODAY - timedelta(days=n) for n in (40, 5, 3, 2))


def at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour), UTC).isoformat().replace("+00:00", "Z")


def event(feature: str, action: str, day: date, hour: int, version: str, client: tuple[str, str],
          user: dict, metadata: dict | None = None) -> dict:
    return make_event(feature=feature, action=action, timestamp=at(day, hour), user=user,
                      source={"server": {"version": version}, "client": {"name": client[0], "version": client[1]}},
                      parameters={"version": 2, "metadata": metadata or {}})


def post(pipeline, events: list, instance: str, license_key: str) -> None:
    body = make_body(events, instance)
    body["metadata"]["identifier"]["licensedInstance"]["externalUrl"] = f"https://{instance}.example.com"
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {license_key}"})
    assert resp.status_code == 200 and not resp.json().get("failedEvents"), resp.text


def query(pipeline, sql: str, **params: object) -> list[dict]:
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ArrayQueryParameter(k, "STRING", v) if isinstance(v, list) else
        bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in params.items()])
    sql = sql.replace("DS.", f"{pipeline.dataset_ref}.")
    return [dict(r) for r in pipeline.bq().query(sql, job_config=config).result()]


@pytest.fixture(scope="module")
def world(pipeline):
    """Load the known set, refresh once; yield names and the first refresh's days."""
    tag = uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))  # feature names have no digits
    x, y = f"agg{tag}.search", f"agg{tag}.chat"
    a, b = f"agg-a-{tag}", f"agg-b-{tag}"
    key_a, key_b = pipeline.issue_license(), pipeline.issue_license()
    vscode, jetbrains = ("VSCODE", "1.0"), ("JETBRAINS", "2.0")
    u1, u2, anon = {"userId": 1}, {"userId": 2}, {"anonymousUserId": "anon-1"}
    a_d3 = [event(x, "executed", D3, 10, "5.1.0", vscode, u1), event(x, "executed", D3, 11, "5.1.0", jetbrains, u2),
            event(y, "shown", D3, 12, "5.1.0", vscode, anon)]
    # Instance A upgrades on D2 between 09:00 and 15:00; user 1 uses two clients that day.
    a_d2 = [event(x, "executed", D2, 9, "5.1.0", vscode, u1), event(x, "executed", D2, 15, "5.2.0", jetbrains, u1)]
    a_d5 = [event(y, "shown", D5, 8, "5.0.9", vscode, u2)]
    b_d2 = [event(x, "executed", D2, 10, "5.2.0", vscode, u1, {"latencyMs": 100, "tokens": 5}),
            event(x, "executed", D2, 11, "5.2.0", vscode, u1, {"latencyMs": 12.5})]
    post(pipeline, a_d5 + a_d3 + a_d2, a, key_a)
    post(pipeline, b_d2, b, key_b)
    # Duplicate deliveries of A's D3 batch (a Pub/Sub redelivery, as the sink sees it).
    publish_batch(pipeline, a_d3, a, fingerprint=decode_license(key_a).fingerprint)
    sent = a_d5 + a_d3 + a_d2 + b_d2
    assert len(wait_rows(pipeline, "events", [e["id"] for e in sent], len(sent) + len(a_d3))) == len(sent) + 3
    before = datetime.now(UTC).date()
    first = refresh.refresh(pipeline.bq(), pipeline.dataset_ref)
    refreshed_on = {before, datetime.now(UTC).date()}  # the refresh's CURRENT_DATE(), even across midnight
    return {"refreshed_on": refreshed_on, "x": x, "y": y, "a": a, "b": b, "key_a": key_a, "key_b": key_b,
            "first": first, "a_d3": a_d3,
            "vscode": vscode, "u2": u2}


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def usage(pipeline, world) -> set[tuple]:
    rows = query(pipeline, "SELECT * FROM `DS.daily_feature_usage` WHERE feature IN UNNEST(@f)",
                 f=[world["x"], world["y"]])
    return {(r["day"], r["feature"].split(".")[1], r["action"], r["client_name"], r["events"], r["instances"],
             r["users"]) for r in rows}


def test_the_first_refresh_rebuilds_every_loaded_day(world):
    assert {D5, D3, D2} <= set(world["first"])


def test_feature_usage_counts_each_event_once(pipeline, world):
    assert usage(pipeline, world) == {
        (D5, "chat", "shown", "VSCODE", 1, 1, 1),
        (D3, "search", "executed", "VSCODE", 1, 1, 1),  # delivered twice, counted once
        (D3, "search", "executed", "JETBRAINS", 1, 1, 1),
        (D3, "chat", "shown", "VSCODE", 1, 1, 1),
        (D2, "search", "executed", "VSCODE", 3, 2, 2),  # A's user 1, B's user 1: two users
        (D2, "search", "executed", "JETBRAINS", 1, 1, 1),
    }


def test_distinct_counts_across_days_merge_sketches_and_do_not_double_count(pipeline, world):
    got = query(pipeline, """
        SELECT SUM(instances) AS summed_instances, HLL_COUNT.MERGE(instances_sketch) AS instances,
               SUM(users) AS summed_users, HLL_COUNT.MERGE(users_sketch) AS users, SUM(events) AS events
        FROM `DS.daily_feature_usage` WHERE feature = @f""", f=world["x"])[0]
    # Rows: D3 VSCODE (A), D3 JETBRAINS (A), D2 VSCODE (A, B), D2 JETBRAINS (A): 5 instance-rows, 2 instances.
    assert (got["summed_instances"], got["instances"]) == (5, 2)
    # Users: A/1, A/2, B/1 (A's user 1 appears on 3 rows).
    assert (got["summed_users"], got["users"]) == (5, 3)
    assert got["events"] == 6  # 2 on D3 (one delivered twice) + 4 on D2


def test_daily_active_users(pipeline, world):
    rows = query(pipeline, "SELECT * FROM `DS.daily_active_users` WHERE instance_id IN UNNEST(@i)",
                 i=[world["a"], world["b"]])
    got = {(r["day"], r["instance_id"][4], r["users"], r["events"], r["events_without_user"], r["clients"])
           for r in rows}
    assert got == {(D5, "a", 1, 1, 0, 1), (D3, "a", 3, 3, 0, 2), (D2, "a", 1, 2, 0, 2), (D2, "b", 1, 2, 0, 1)}
    merged = query(pipeline, "SELECT HLL_COUNT.MERGE(users_sketch) AS users, SUM(users) AS summed "
                             "FROM `DS.daily_active_users` WHERE instance_id = @i", i=world["a"])[0]
    assert (merged["users"], merged["summed"]) == (3, 5)  # user 2 on D5 and D3, user 1 on D3 and D2, anon


def test_daily_active_instances_keep_the_days_first_and_latest_version(pipeline, world):
    rows = query(pipeline, "SELECT * FROM `DS.daily_active_instances` WHERE instance_id = @i", i=world["a"])
    got = {(utc_day(r["day_start"]), r["first_server_version"], r["server_version"], r["first_event"].hour,
            r["last_event"].hour) for r in rows}
    assert got == {(D5, "5.0.9", "5.0.9", 8, 8), (D3, "5.1.0", "5.1.0", 10, 12), (D2, "5.1.0", "5.2.0", 9, 15)}


def test_instances_table(pipeline, world):
    rows = {r["instance_id"]: r for r in query(pipeline, "SELECT * FROM `DS.instances` WHERE instance_id IN "
                                                         "UNNEST(@i)", i=[world["a"], world["b"]])}
    a, b = rows[world["a"]], rows[world["b"]]
    assert (a["first_seen"], a["last_seen"], a["server_version"], a["server_versions"]) == (
        D5, D2, "5.2.0", ["5.0.9", "5.1.0", "5.2.0"])
    assert a["license_fingerprint"] == decode_license(world["key_a"]).fingerprint
    assert a["external_url"] == f"https://{world['a']}.example.com"
    assert (a["active_days_28"], a["caller_kind"]) == (3, "licensed_instance")
    assert a["as_of"] in world["refreshed_on"]
    assert (b["first_seen"], b["last_seen"], b["server_versions"], b["active_days_28"]) == (D2, D2, ["5.2.0"], 1)
    assert b["license_fingerprint"] == decode_license(world["key_b"]).fingerprint


def test_metadata_key_catalogue(pipeline, world):
    daily = query(pipeline, "SELECT * FROM `DS.daily_metadata_keys` WHERE feature = @f", f=world["x"])
    assert {(r["day"], r["key"], r["parameters_version"], r["events"], r["integer_events"], r["value_sum"],
             r["min_value"], r["max_value"]) for r in daily} == {(D2, "latencyMs", 2, 2, 1, 112.5, 12.5, 100.0),
                                                                 (D2, "tokens", 2, 1, 1, 5, 5, 5)}
    catalogue = query(pipeline, "SELECT * FROM `DS.metadata_keys` WHERE feature = @f ORDER BY key", f=world["x"])
    assert [(r["key"], r["first_day"], r["events"], r["integers_only"], r["mean_value"]) for r in catalogue] == [
        ("latencyMs", D2, 2, False, 56.25), ("tokens", D2, 1, True, 5.0)]


def test_late_events_and_redeliveries_rebuild_only_their_days(pipeline, world):
    """Runs after the checks above (pytest keeps file order): it changes the world."""
    x, a, b = world["x"], world["a"], world["b"]
    late = event(x, "executed", D40, 7, "5.0.0", world["vscode"], world["u2"])
    new_b = event(x, "executed", D2, 18, "5.2.0", world["vscode"], {"userId": 7})
    post(pipeline, [late], a, world["key_a"])
    post(pipeline, [new_b], b, world["key_b"])
    post(pipeline, world["a_d3"][:1], a, world["key_a"])  # the instance re-sends an event after a timeout
    # The re-sent event now has 3 rows: sent, redelivered, re-sent.
    assert len(wait_rows(pipeline, "events", [late["id"], new_b["id"], world["a_d3"][0]["id"]], 5)) == 5
    before = usage(pipeline, world)
    # No overlap here, so the rows loaded before the first refresh are not read again (the default overlap
    # is tested below).
    days = refresh.refresh(pipeline.bq(), pipeline.dataset_ref, overlap_minutes=0)
    assert {D40, D3, D2} <= set(days) and D5 not in days  # D5 received nothing: left as it was
    after = usage(pipeline, world)
    assert after - before == {(D40, "search", "executed", "VSCODE", 1, 1, 1),
                              (D2, "search", "executed", "VSCODE", 4, 2, 3)}
    assert before - after == {(D2, "search", "executed", "VSCODE", 3, 2, 2)}  # D3 unchanged by the re-send
    inst = query(pipeline, "SELECT * FROM `DS.instances` WHERE instance_id = @i", i=a)[0]
    # The late event moves first_seen back and adds the oldest version; it is outside the last 28 days.
    assert (inst["first_seen"], inst["server_versions"], inst["active_days_28"]) == (
        D40, ["5.0.0", "5.0.9", "5.1.0", "5.2.0"], 3)
    assert D2 in refresh.refresh(pipeline.bq(), pipeline.dataset_ref)  # within the overlap: read again
    assert usage(pipeline, world) == after  # and rebuilt to the same numbers


def test_rebuild_of_named_days_reproduces_the_refresh(pipeline, world):
    before = usage(pipeline, world)
    assert refresh.rebuild(pipeline.bq(), pipeline.dataset_ref, [D40, D5, D3, D2]) == [D40, D5, D3, D2]
    assert usage(pipeline, world) == before


def test_a_row_stamped_before_the_last_refresh_but_visible_after_it_is_still_picked_up(pipeline, world):
    """The sink stamps inserted_at before its append is acknowledged: the overlap covers that gap."""
    client = pipeline.bq()
    last = query(pipeline, "SELECT MAX(started_at) AS t FROM `DS.aggregate_runs` WHERE kind = 'refresh'")[0]["t"]
    day, instance = TODAY - timedelta(days=60), f"agg-late-visible-{uuid.uuid4().hex[:6]}"
    stamped = (last - timedelta(minutes=aggregates.OVERLAP_MINUTES - 5)).isoformat()
    row = {"event_id": str(uuid.uuid4()), "timestamp": at(day, 6), "feature": world["x"], "action": "executed",
           "instance_id": instance, "license_fingerprint": "fp-late", "received_at": stamped, "inserted_at": stamped}
    assert client.insert_rows_json(f"{pipeline.dataset_ref}.events", [row], timeout=10) == []
    assert day in refresh.refresh(client, pipeline.dataset_ref)
    got = query(pipeline, "SELECT day, users, events FROM `DS.daily_active_users` WHERE instance_id = @i", i=instance)
    assert got == [{"day": day, "users": 0, "events": 1}]
