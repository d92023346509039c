"""GoogleSQL DDL for every warehouse object: the only place SQL that creates or changes one is written."""

from __future__ import annotations

from collections.abc import Sequence

from shared.sink.warehouse.columns import Column, TableDef


def sql_string(text: str) -> str:
    """A GoogleSQL string literal holding text."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def column_type(column: Column) -> str:
    """The column's type as DDL writes it (REPEATED as ARRAY<T>)."""
    return f"ARRAY<{column.type}>" if column.mode == "REPEATED" else column.type


def create_table_sql(table: TableDef, table_ref: str, expiration_days: int | None = None) -> str:
    """`CREATE TABLE IF NOT EXISTS` with column descriptions, partitioning, clustering and expiration."""
    columns = ",\n  ".join(
        f"`{c.name}` {column_type(c)}{' NOT NULL' if c.mode == 'REQUIRED' else ''} "
        f"OPTIONS (description = {sql_string(c.description)})" for c in table.columns)
    options = [f"description = {sql_string(table.description)}"]
    if table.partition_field and expiration_days:
        options.append(f"partition_expiration_days = {int(expiration_days)}")
    return (f"CREATE TABLE IF NOT EXISTS `{table_ref}` (\n  {columns})"
            + (f"\nPARTITION BY `{table.partition_field}`" if table.partition_field else "")
            + f"\nCLUSTER BY {', '.join(table.clustering)}\nOPTIONS ({', '.join(options)})")


def add_columns_sql(table_ref: str, columns: Sequence[Column]) -> str:
    """One `ALTER TABLE` adding every column (one table metadata update, however many columns).

    Additive only: NULLABLE or REPEATED columns, which BigQuery adds without rewriting the table.
    """
    if not columns:
        raise ValueError("no column to add")
    if any(c.mode == "REQUIRED" for c in columns):
        raise ValueError("a REQUIRED column cannot be added to an existing table")
    clauses = ",\n  ".join(f"ADD COLUMN IF NOT EXISTS `{c.name}` {column_type(c)}" for c in columns)
    return f"ALTER TABLE `{table_ref}`\n  {clauses}"


def partition_expiration_sql(table_ref: str, days: int) -> str:
    """Partitions older than `days` are deleted by BigQuery."""
    return f"ALTER TABLE `{table_ref}` SET OPTIONS (partition_expiration_days = {int(days)})"


def create_view_sql(view_ref: str, query: str, description: str | None = None) -> str:
    """A logical view, replaced in place (its readers keep their grants)."""
    options = f" OPTIONS (description = {sql_string(description)})" if description else ""
    return f"CREATE OR REPLACE VIEW `{view_ref}`{options} AS {query}"


def drop_view_sql(view_ref: str) -> str:
    """Drop a view of an earlier release."""
    return f"DROP VIEW IF EXISTS `{view_ref}`"


def grant_sql(role: str, dataset_ref: str, member: str) -> str:
    """A dataset-level grant (`bq add-iam-policy-binding` does not support datasets)."""
    if '"' in member or "`" in role:
        raise ValueError("not a member or role name")
    return f'GRANT `{role}` ON SCHEMA `{dataset_ref}` TO "{member}"'


def materialized_view_sql(view_ref: str, partition_by: str, cluster_by: str, description: str,
                          labels: dict[str, str], query: str) -> str:
    """`CREATE MATERIALIZED VIEW`, refreshed by BigQuery every 30 minutes."""
    label_list = ", ".join(f"({sql_string(k)}, {sql_string(v)})" for k, v in labels.items())
    return (f"CREATE MATERIALIZED VIEW `{view_ref}`\nPARTITION BY {partition_by}\nCLUSTER BY {cluster_by}\n"
            f"OPTIONS (enable_refresh = true, refresh_interval_minutes = 30, description = {sql_string(description)}, "
            f"labels = [{label_list}])\nAS {query}")
