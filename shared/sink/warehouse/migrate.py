"""Bringing a live table to its definition with at most two metadata updates.

BigQuery allows 5 table metadata updates per 10 s per table, and every `ALTER TABLE` is one
(docs/operations.md). So the live table is compared with its definition first: the missing columns are
added in one statement, and the partition expiration is set only when it differs. A table that is
already right gets no statement at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.sink.warehouse.columns import TableDef
from shared.sink.warehouse.ddl import add_columns_sql, partition_expiration_sql

DAY_MS = 86_400_000


@dataclass(frozen=True)
class LiveTable:
    """What a migration needs to know of a table as it exists."""

    columns: frozenset[str]
    partition_expiration_ms: int | None

    @classmethod
    def from_resource(cls, resource: Mapping) -> LiveTable:
        """From the Table resource of the BigQuery API (`bq show --format=json`, `Table.to_api_repr()`)."""
        fields = resource.get("schema", {}).get("fields", [])
        expiration = resource.get("timePartitioning", {}).get("expirationMs")
        return cls(frozenset(f["name"] for f in fields), int(expiration) if expiration is not None else None)


def missing_columns(table: TableDef, live_columns: Iterable[str]) -> list[str]:
    """Columns of the definition the live table lacks, in definition order."""
    have = set(live_columns)
    return [c.name for c in table.columns if c.name not in have]


def migration(table: TableDef, table_ref: str, live: LiveTable, expiration_days: int | None = None) -> list[str]:
    """The statements (0, 1 or 2) that bring the live table to the definition; expiration None: leave it."""
    statements = []
    missing = missing_columns(table, live.columns)
    if missing:
        statements.append(add_columns_sql(table_ref, [table.column(n) for n in missing]))
    if table.partition_field and expiration_days and live.partition_expiration_ms != expiration_days * DAY_MS:
        statements.append(partition_expiration_sql(table_ref, expiration_days))
    return statements
