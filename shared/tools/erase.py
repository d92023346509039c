"""Erase rows: `python -m shared.tools.erase (--instance-id ID | --license-fingerprint FP) [--dry-run]`.

Deletes every matching row of `events` and `rejected_events` with DML, after counting them, then
rebuilds the analysts' aggregates for the days those events were on (the daily tables and `instances`
hold instance ids and sketches of them); `--dry-run` counts only. Each run is logged (who, what, when)
as a structured line. What it cannot reach is in README "Erasing data": copies in the Pub/Sub backlog
and the dead-letter topic until their retention ends, and BigQuery's time travel and fail-safe windows.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from shared import logs
from shared.config import Config
from shared.sink.bq import bigquery_client, table_id
from shared.sink.tables import EVENTS, TABLES
from shared.tools import aggregates

COLUMNS = {"instance_id": "instance_id", "license_fingerprint": "license_fingerprint"}


def erase(config: Config, column: str, value: str, dry_run: bool, who: str) -> dict[str, int]:
    """Rows matched per table; deleted unless dry_run."""
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
    matched["aggregate_days"] = len(days)
    if not dry_run and days:
        try:
            aggregates.rebuild(client, aggregates.dataset_of(config), days)
        except NotFound:  # a dataset without the aggregates: nothing derived to clean
            matched["aggregate_days"] = 0
    logs.warning("rows_erased" if not dry_run else "rows_to_erase", who=who, selector=column, value=value,
                 dryRun=dry_run, matched=matched, at=datetime.now(UTC).isoformat(), dataset=config.bq_dataset)
    return matched


def main(argv: list[str] | None = None) -> int:
    """CLI (settings from the same environment variables as the sink)."""
    p = argparse.ArgumentParser(prog="python -m shared.tools.erase", description=__doc__)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--instance-id")
    who.add_argument("--license-fingerprint")
    p.add_argument("--dry-run", action="store_true", help="count the rows, delete nothing")
    args = p.parse_args(argv)
    column, value = ("instance_id", args.instance_id) if args.instance_id else (
        "license_fingerprint", args.license_fingerprint)
    if not value.strip():
        p.error("the selector needs a value")
    config = Config.from_env()
    matched = erase(config, column, value, args.dry_run, getpass.getuser())
    verb = "would delete" if args.dry_run else "deleted"
    days = matched.pop("aggregate_days")
    for table, n in matched.items():
        print(f"{table}: {verb} {n} rows where {column} = {value!r}")
    print(f"aggregates: {'would rebuild' if args.dry_run else 'rebuilt'} {days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
