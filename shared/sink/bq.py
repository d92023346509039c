"""BigQuery clients (real or emulator), table creation and additive migration."""

from __future__ import annotations

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

from shared import logs
from shared.config import Config
from shared.sink.storage_write import default_stream
from shared.sink.tables import RETIRED_VIEWS, TABLES, VIEWS, TableDef, add_column_statements, view_sql


def bigquery_client(config: Config) -> bigquery.Client:
    """REST client; anonymous against the emulator when BIGQUERY_EMULATOR_HOST is set."""
    if config.bigquery_emulator_host:
        return bigquery.Client(
            project=config.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=f"http://{config.bigquery_emulator_host}"),
        )
    return bigquery.Client(project=config.project)


def write_client(config: Config) -> BigQueryWriteClient:
    """Storage Write API client; insecure gRPC to the emulator when BIGQUERY_EMULATOR_GRPC_HOST is set."""
    if config.bigquery_emulator_grpc_host:
        channel = grpc.insecure_channel(config.bigquery_emulator_grpc_host)
        return BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
    return BigQueryWriteClient()


def schema_fields(table: TableDef) -> list[bigquery.SchemaField]:
    """google-cloud-bigquery schema of a table definition."""
    return [bigquery.SchemaField(c.name, c.type, mode=c.mode, description=c.description) for c in table.columns]


def table_id(config: Config, table: TableDef) -> str:
    """project.dataset.table."""
    return f"{config.project}.{config.bq_dataset}.{table.name}"


def _create_table(client: bigquery.Client, config: Config, table: TableDef) -> None:
    spec = bigquery.Table(table_id(config, table), schema=schema_fields(table))
    spec.description = table.description
    spec.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                       field=table.partition_field,
                                                       expiration_ms=expiration_days(config, table) * 86_400_000)
    spec.clustering_fields = list(table.clustering)
    client.create_table(spec, exists_ok=True, timeout=config.bq_timeout_s)


def expiration_days(config: Config, table: TableDef) -> int:
    """How long the table keeps a partition (EVENTS_/REJECTED_PARTITION_EXPIRATION_DAYS)."""
    return getattr(config, table.expiration_setting.lower())


def missing_columns(client: bigquery.Client, config: Config, table: TableDef) -> list[str]:
    """Columns of the definition the live table lacks."""
    have = {f.name for f in client.get_table(table_id(config, table), timeout=config.bq_timeout_s).schema}
    return [c.name for c in table.columns if c.name not in have]


def migrate(client: bigquery.Client, config: Config, table: TableDef) -> list[str]:
    """Add missing columns as NULLABLE (additive only: nothing is dropped or retyped); return them."""
    added = missing_columns(client, config, table)
    for ddl in add_column_statements(table, table_id(config, table), added) if added else ():
        client.query(ddl, timeout=config.bq_timeout_s).result(timeout=config.bq_timeout_s)
    if added:
        logs.info("columns_added", table=table.name, columns=added)
    return added


def live_columns(writes: BigQueryWriteClient, config: Config, table: TableDef) -> list[str]:
    """The table's columns as the Storage Write API sees them (it learns of new columns minutes late)."""
    stream = default_stream(config.project, config.bq_dataset, table.name)
    found = writes.get_write_stream(request={"name": stream, "view": types.WriteStreamView.FULL},
                                    timeout=config.bq_timeout_s)
    return [f.name for f in found.table_schema.fields]


def ensure_dataset(config: Config, client: bigquery.Client | None = None) -> None:
    """Create the dataset, tables and views if missing, migrate tables additively, drop retired views."""
    client = client or bigquery_client(config)
    client.create_dataset(f"{config.project}.{config.bq_dataset}", exists_ok=True, timeout=config.bq_timeout_s)
    for table in TABLES:
        _create_table(client, config, table)
        migrate(client, config, table)
    dataset = f"{config.project}.{config.bq_dataset}"
    ddls = [f"CREATE OR REPLACE VIEW `{dataset}.{name}` AS {view_sql(name, dataset)}" for name in VIEWS]
    for ddl in ddls + [f"DROP VIEW IF EXISTS `{dataset}.{name}`" for name in RETIRED_VIEWS]:
        client.query(ddl, timeout=config.bq_timeout_s).result(timeout=config.bq_timeout_s)
