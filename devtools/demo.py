"""The demo load `make run` sends, and the summary it reads back from BigQuery."""

from __future__ import annotations

import shlex
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import orjson

from devtools.pipeline import LocalPipeline, wait_for_rows
from shared.sink.warehouse import refresh
from tools.client import Sender
from tools.generate import generate
from tools.warehouse import refresh_lookback


def send_demo_load(pipeline: LocalPipeline, count: int = 3000) -> int:
    """Send synthetic events from a few instances with dev licenses (the client CLI's Sender); return succeeded."""
    by_instance: dict[str, list] = defaultdict(list)
    for instance, event in generate(count, instances=4, days=3, seed=7):
        by_instance[instance].append(event)
    succeeded = 0
    for instance, events in by_instance.items():
        sender = Sender(pipeline.edge.url, pipeline.issue_license(("dev", f"plan:demo-{instance}")), instance,
                        external_url=f"https://{instance}.example.com", max_time_s=60)
        report = sender.send(events)
        if not report.ok:
            raise RuntimeError(f"demo load failed: {report.summary()}")
        succeeded += report.succeeded
    return succeeded


def run_demo(pipeline: LocalPipeline) -> None:
    """Send the demo load, wait until queryable, print a summary, the URL and a curl example."""
    sent = send_demo_load(pipeline)
    table = f"`{pipeline.project}.{pipeline.dataset}.events_deduped`"
    client = pipeline.bq()
    landed = wait_for_rows(client, table, sent, timeout=120)
    print(f"\n{sent} events accepted by ingest, {landed} queryable in {table}")
    days = refresh.refresh(client, pipeline.dataset_ref, lookback_days=refresh_lookback(pipeline.env))  # as scheduled
    print(f"aggregates refreshed: {len(days)} days rebuilt (docs/analysts.md)\n")
    query = (f"SELECT day, feature, SUM(events) AS events, HLL_COUNT.MERGE(instances_sketch) AS instances "
             f"FROM `{pipeline.dataset_ref}.daily_feature_usage` "
             "WHERE day >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY) GROUP BY day, feature ORDER BY day, feature")
    print(f"{'day':<12}{'feature':<26}{'events':>7}{'instances':>10}")
    for row in client.query(query).result():
        print(f"{row.day!s:<12}{row.feature:<26}{row.events:>7}{row.instances:>10}")
    license_file = pipeline.workdir / "demo-license"  # printed commands read it: keys stay off screens
    license_file.write_text(pipeline.issue_license() + "\n")
    license_file.chmod(0o600)
    body = curl_body(datetime.now(UTC))
    print(f"\nedge URL: {pipeline.edge.url}/v1/events   (a local load balancer with deploy/dev.env's Cloud Armor "
          "policy, devtools/load_balancer.py)")
    print(f"ingest URL: {pipeline.ingest.url}/v1/events   (sink: {pipeline.sink.url})")
    print(f"BigQuery emulator REST: http://{pipeline.bigquery.rest_host}  project={pipeline.project} "
          f"dataset={pipeline.dataset}")
    print("\nTry it:\n"
          f"curl -sS -X POST {pipeline.edge.url}/v1/events \\\n"
          f"  -H \"Authorization: Bearer $(cat {license_file})\" \\\n"
          f"  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(body)}")


def curl_body(now: datetime) -> str:
    """The printed curl example's body: one event stamped `now` (a fixed date would fall out of EVENT_MAX_AGE_DAYS
    and be refused as timestamp_too_old a year later)."""
    return orjson.dumps({"metadata": {"requestId": "curl-1", "identifier": {"licensedInstance": {
        "instanceId": "curl-instance", "externalUrl": "https://sg.example.com"}}}, "events": [{
            "id": str(uuid.uuid4()), "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "feature": "cody.completion", "action": "accepted", "source": {"server": {"version": "5.5.2"}},
            "parameters": {"metadata": {"durationMs": 120}}}]}).decode()
