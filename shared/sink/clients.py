"""BigQuery clients (real or emulator) and what the sink asks of the live tables at start-up."""

from __future__ import annotations

import grpc
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

from shared import logs
from shared.sink.config import SinkConfig
from shared.sink.storage_write import default_stream
from shared.sink.warehouse.columns import TableDef
from shared.sink.warehouse.migrate import LiveTable, migration, missing_columns


class WarehouseMissing(RuntimeError):
    """The dataset or a table does not exist: deploy.sh creates them (the sink may not)."""


def bigquery_client(config: SinkConfig) -> bigquery.Client:
    """REST client; anonymous against the emulator when BIGQUERY_EMULATOR_HOST is set."""
    if config.bigquery_emulator_host:
        return bigquery.Client(
            project=config.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=f"http://{config.bigquery_emulator_host}"),
        )
    return bigquery.Client(project=config.project)


def write_client(config: SinkConfig) -> BigQueryWriteClient:
    """Storage Write API client; insecure gRPC to the emulator when BIGQUERY_EMULATOR_GRPC_HOST is set."""
    if config.bigquery_emulator_grpc_host:
        channel = grpc.insecure_channel(config.bigquery_emulator_grpc_host)
        return BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
    return BigQueryWriteClient()


def table_id(config: SinkConfig, table: TableDef) -> str:
    """project.dataset.table."""
    return f"{config.dataset_ref}.{table.name}"


def add_missing_columns(client: bigquery.Client, config: SinkConfig, table: TableDef) -> list[str]:
    """Add the columns a newer release defines, in one statement (none when the table is current).

    The sink creates nothing: a missing dataset or table is the operator's to fix (deploy.sh), and the
    sink's account has no right to create datasets. Partition options are deploy.sh's too.
    """
    try:
        live = client.get_table(table_id(config, table), timeout=config.bq_timeout_s)
    except gexc.NotFound as exc:
        raise WarehouseMissing(f"{table_id(config, table)} does not exist: run deploy.sh for this environment "
                               f"({exc.message})") from None
    current = LiveTable.from_resource(live.to_api_repr())
    for ddl in migration(table, table_id(config, table), current):
        client.query(ddl, timeout=config.bq_timeout_s).result(timeout=config.bq_timeout_s)
    added = missing_columns(table, current.columns)
    if added:
        logs.info("columns_added", table=table.name, columns=added)
    return added


def live_columns(writes: BigQueryWriteClient, config: SinkConfig, table: TableDef) -> list[str]:
    """The table's columns as the Storage Write API sees them (it learns of new columns minutes late)."""
    stream = default_stream(config.project, config.bq_dataset, table.name)
    found = writes.get_write_stream(request={"name": stream, "view": types.WriteStreamView.FULL},
                                    timeout=config.bq_timeout_s)
    return [f.name for f in found.table_schema.fields]
