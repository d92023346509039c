"""The warehouse on the emulator: a fresh dataset as deploys make it; the sink's start-up migration."""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from devtools.pipeline import create_warehouse
from shared.sink.clients import WarehouseMissing, add_missing_columns, bigquery_client, table_id
from shared.sink.config import SinkConfig
from shared.sink.warehouse import TABLES, views
from shared.sink.warehouse.tables import EVENTS, REJECTED


def test_a_fresh_warehouse_has_every_table_and_view_and_can_be_made_again(bigquery_env):
    config = SinkConfig.from_env(bigquery_env)
    create_warehouse(config)
    create_warehouse(config)  # every statement is idempotent: a second run changes nothing and does not fail
    client = bigquery_client(config)
    events = client.get_table(table_id(config, EVENTS))
    assert [f.name for f in events.schema] == [c.name for c in EVENTS.columns]
    assert events.time_partitioning.field == "timestamp" and events.clustering_fields == list(EVENTS.clustering)
    assert client.get_table(table_id(config, REJECTED)).time_partitioning.field == "received_at"
    for table in TABLES:
        client.get_table(table_id(config, table))
    for view in views.VIEWS:
        assert client.get_table(f"{config.dataset_ref}.{view}").table_type == "VIEW"


def test_the_sink_adds_only_missing_columns_in_one_statement(bigquery_env):
    config = SinkConfig.from_env(bigquery_env)
    client = bigquery_client(config)
    client.create_dataset(config.dataset_ref, exists_ok=True)
    first = [c for c in REJECTED.columns if c.name not in ("replayed_at", "caller_kind")]
    client.create_table(bigquery.Table(table_id(config, REJECTED), schema=[
        bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in first]))
    jobs_before = {j.job_id for j in client.list_jobs()}
    assert add_missing_columns(client, config, REJECTED) == ["caller_kind", "replayed_at"]
    alters = [j for j in client.list_jobs() if j.job_id not in jobs_before and "ALTER" in (j.query or "")]
    assert len(alters) == 1 and alters[0].query.count("ADD COLUMN IF NOT EXISTS") == 2  # one metadata update
    # The emulator's get_table may not list columns added by ALTER TABLE (emulators.md); a query sees them.
    ref = table_id(config, REJECTED)
    query = f"SELECT COUNT(*) AS n, COUNT(replayed_at) AS r, COUNT(caller_kind) AS k FROM `{ref}`"
    (row,) = client.query(query).result()
    assert (row.n, row.r, row.k) == (0, 0, 0)


def test_a_missing_table_is_the_operators_to_fix_and_the_sink_creates_nothing(bigquery_env):
    config = SinkConfig.from_env(bigquery_env)
    client = bigquery_client(config)
    with pytest.raises(WarehouseMissing, match=r"does not exist: run deploy\.sh"):
        add_missing_columns(client, config, EVENTS)
    assert config.bq_dataset not in {d.dataset_id for d in client.list_datasets()}  # no dataset was created
