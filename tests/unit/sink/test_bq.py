"""BigQuery set-up on the emulator: dataset, partitioned and clustered tables, views, additive migration."""

from __future__ import annotations

from google.cloud import bigquery

from shared.config import Config
from shared.sink.bq import bigquery_client, ensure_dataset, migrate, missing_columns, table_id
from shared.sink.tables import EVENTS, REJECTED, VIEWS


def test_ensure_dataset_creates_tables_and_views_idempotently(bigquery_env):
    config = Config.from_env(bigquery_env)
    ensure_dataset(config)
    ensure_dataset(config)  # a second run changes nothing and does not fail
    client = bigquery_client(config)
    events = client.get_table(table_id(config, EVENTS))
    assert [f.name for f in events.schema] == [c.name for c in EVENTS.columns]
    assert events.time_partitioning.field == "timestamp" and events.clustering_fields == list(EVENTS.clustering)
    assert client.get_table(table_id(config, REJECTED)).time_partitioning.field == "received_at"
    for view in VIEWS:
        assert client.get_table(f"{config.project}.{config.bq_dataset}.{view}").table_type == "VIEW"


def test_migrate_adds_only_missing_columns_as_nullable(bigquery_env):
    config = Config.from_env(bigquery_env)
    client = bigquery_client(config)
    client.create_dataset(f"{config.project}.{config.bq_dataset}", exists_ok=True)
    first = [c for c in REJECTED.columns if c.name not in ("replayed_at", "caller_kind")]
    client.create_table(bigquery.Table(table_id(config, REJECTED), schema=[
        bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in first]))
    assert missing_columns(client, config, REJECTED) == ["caller_kind", "replayed_at"]
    assert migrate(client, config, REJECTED) == ["caller_kind", "replayed_at"]
    # The emulator's get_table may not list columns added by ALTER TABLE (emulators.md); a query sees them.
    table = table_id(config, REJECTED)
    query = f"SELECT COUNT(*) AS n, COUNT(replayed_at) AS r, COUNT(caller_kind) AS k FROM `{table}`"
    (row,) = client.query(query).result()
    assert (row.n, row.r, row.k) == (0, 0, 0)
    migrate(client, config, REJECTED)  # IF NOT EXISTS: running again is harmless
