"""Erase rows: `python -m tools.erase (--instance-id ID | --license-fingerprint FP) [--dry-run]`.

Deletes every matching row of `events` and `rejected_events` with DML, after counting them, then
rebuilds the analysts' aggregates for the days those events were on (the daily tables and `instances`
hold instance ids and sketches of them); `--dry-run` counts only. Each run is logged (who, what, when)
as a structured line. What it cannot reach is in docs/operations.md "Erasing data": copies in the Pub/Sub backlog
and the dead-letter topic until their retention ends, and BigQuery's time travel and fail-safe windows.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, date, datetime

from google.api_core.exceptions import GoogleAPIError, NotFound
from google.cloud import bigquery

from shared import logs
from shared.sink.clients import bigquery_client, table_id
from shared.sink.config import SinkConfig
from shared.sink.warehouse import aggregates, refresh
from shared.sink.warehouse.tables import EVENTS, TABLES

COLUMNS = {"instance_id": "instance_id", "license_fingerprint": "license_fingerprint"}


def erase(config: SinkConfig, column: str, value: str, dry_run: bool, who: str) -> tuple[dict[str, int], list[date]]:
    """Rows matched per table (deleted unless dry_run), and the days of the events matched."""
    if column not in COLUMNS or not value.strip():
        raise ValueError("erase needs --instance-id or --license-fingerprint with a value")
    client = bigquery_client(config)
    params = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("value", "STRING", value)])
    matched: dict[str, int] = {}
    days_sql = (f"SELECT DISTINCT DATE(`timestamp`) AS day FROM `{table_id(config, EVENTS)}` "
                f"WHERE {COLUMNS[column]} = @value")
    days = [r.day for r in client.query(days_sql, job_config=params, timeout=config.bq_timeout_s)
            .result(timeout=config.bq_timeout_s)]
    for table in TABLES:
        ref = table_id(config, table)
        count = f"SELECT COUNT(*) AS n FROM `{ref}` WHERE {COLUMNS[column]} = @value"
        matched[table.name] = next(iter(client.query(count, job_config=params, timeout=config.bq_timeout_s)
                                        .result(timeout=config.bq_timeout_s))).n
        if not dry_run and matched[table.name]:
            delete = f"DELETE FROM `{ref}` WHERE {COLUMNS[column]} = @value"
            client.query(delete, job_config=params, timeout=config.bq_timeout_s).result(timeout=config.bq_timeout_s)
    logs.warning("rows_erased" if not dry_run else "rows_to_erase", who=who, selector=column, value=value,
                 dryRun=dry_run, matched=matched, days=len(days), at=datetime.now(UTC).isoformat(),
                 dataset=config.bq_dataset)
    return matched, sorted(days)


def rebuild_aggregates(config: SinkConfig, days: list[date]) -> bool:
    """Rebuild the aggregates of the erased events' days (deletes change no inserted_at, so no refresh
    would); False when the dataset has no aggregates."""
    client, ds = bigquery_client(config), config.dataset_ref
    try:
        client.get_table(f"{ds}.{aggregates.AGGREGATE_RUNS.name}", timeout=config.bq_timeout_s)
    except NotFound:
        return False
    refresh.rebuild(client, ds, days)
    return True


def main(argv: list[str] | None = None) -> int:
    """CLI (settings from the same environment variables as the sink)."""
    p = argparse.ArgumentParser(prog="python -m tools.erase", description=__doc__)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--instance-id")
    who.add_argument("--license-fingerprint")
    p.add_argument("--dry-run", action="store_true", help="count the rows, delete nothing")
    args = p.parse_args(argv)
    column, value = ("instance_id", args.instance_id) if args.instance_id else (
        "license_fingerprint", args.license_fingerprint)
    if not value.strip():
        p.error("the selector needs a value")
    config = SinkConfig.from_env()
    matched, days = erase(config, column, value, args.dry_run, getpass.getuser())
    verb = "would delete" if args.dry_run else "deleted"
    for table, n in matched.items():
        print(f"{table}: {verb} {n} rows where {column} = {value!r}")
    if args.dry_run or not days:
        print(f"aggregates: would rebuild {len(days)} days" if days else "aggregates: nothing to rebuild")
        return 0
    try:
        done = rebuild_aggregates(config, days)
    except GoogleAPIError as e:  # the rows are gone; the aggregates still count them until rebuilt
        print(f"aggregates NOT rebuilt ({e}); run: python -m tools.aggregates rebuild "
              f"--from {days[0]} --to {days[-1]}", file=sys.stderr)
        return 1
    print(f"aggregates: rebuilt {len(days)} days" if done else "aggregates: none in this dataset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
