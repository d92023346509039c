"""Re-publish rejected events (after a fix) and mark them replayed: `python -m tools.replay --since ...`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from google.cloud import bigquery

from shared import jsontext
from shared.envelope import Batch, Identity, encode
from shared.ingest.config import IngestConfig
from shared.ingest.publisher import Publisher
from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.warehouse.tables import REJECTED

SELECT = """
SELECT rejection_id, message_id, request_id, instance_id, external_url, license_fingerprint, license_tags,
       environment, caller_kind, service_environment, caller_email, received_at, raw_event, redacted_fields
FROM `{table}`
WHERE received_at >= @since AND received_at < @until AND replayed_at IS NULL
  AND (@reason IS NULL OR reason = @reason)
ORDER BY received_at, message_id, event_index
LIMIT @limit"""

MARK = """
UPDATE `{table}` SET replayed_at = CURRENT_TIMESTAMP()
WHERE received_at >= @since AND rejection_id IN UNNEST(@ids)"""


def _batches(rows: list) -> list[tuple[Batch, list[str]]]:
    """Group rejected rows by their original message (each rejection once)."""
    groups: dict[str, tuple[Batch, list[str]]] = {}
    seen: set[str] = set()
    for row in rows:
        if row.rejection_id in seen:
            continue
        seen.add(row.rejection_id)
        if row.message_id not in groups:
            identity = Identity(row.instance_id, row.external_url, row.license_fingerprint,
                                tuple(row.license_tags or ()), row.environment,
                                row.caller_kind or "licensed_instance", row.service_environment, row.caller_email)
            groups[row.message_id] = (Batch(identity, row.request_id, row.received_at.isoformat(), [], []), [])
        batch, ids = groups[row.message_id]
        batch.events.append(jsontext.loads(row.raw_event.encode()))  # JSON text, exactly as published
        batch.redacted.append(list(getattr(row, "redacted_fields", None) or []))
        ids.append(row.rejection_id)
    return list(groups.values())


def replay(config: SinkConfig, publishing: IngestConfig, since: datetime, until: datetime, reason: str | None,
           limit: int, dry_run: bool = False) -> dict:
    """Publish rejected events again, one message per original message; return counts."""
    client = bigquery_client(config)
    table = f"{config.project}.{config.bq_dataset}.{REJECTED.name}"
    params = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
              bigquery.ScalarQueryParameter("until", "TIMESTAMP", until),
              bigquery.ScalarQueryParameter("reason", "STRING", reason),
              bigquery.ScalarQueryParameter("limit", "INT64", limit)]
    job = client.query(SELECT.format(table=table), job_config=bigquery.QueryJobConfig(query_parameters=params),
                       timeout=config.bq_timeout_s)
    batches = _batches(list(job.result(timeout=config.bq_timeout_s)))
    counts = {"messages": len(batches), "events": sum(len(b.events) for b, _ in batches), "dryRun": dry_run}
    if dry_run:
        return counts
    publisher = Publisher(publishing.topic_path, publishing.publish_timeout_s, publishing.retry_after_s)
    for batch, ids in batches:
        data, attributes = encode(batch, publishing.gzip_level, {"replay": "true"})
        publisher.publish(data, attributes)
        mark = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
            bigquery.ArrayQueryParameter("ids", "STRING", ids)])
        client.query(MARK.format(table=table), job_config=mark, timeout=config.bq_timeout_s).result(
            timeout=config.bq_timeout_s)
    return counts


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (settings from the same environment variables as the functions)."""
    p = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__)
    p.add_argument("--since", required=True, type=_time, help="rejections received at or after (ISO 8601)")
    p.add_argument("--until", type=_time, default=None, help="and before (default: now)")
    p.add_argument("--reason", help="only this reason, e.g. bigquery_row_error")
    p.add_argument("--limit", type=int, default=100_000)
    p.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    args = p.parse_args(argv)
    counts = replay(SinkConfig.from_env(), IngestConfig.from_env(), args.since, args.until or datetime.now(UTC),
                    args.reason, args.limit, args.dry_run)
    verb = "would re-publish" if args.dry_run else "re-published"
    print(f"{verb} {counts['events']} events in {counts['messages']} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
