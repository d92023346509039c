"""A table's shape: columns with types, modes and descriptions; partitioning, clustering, expiration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: BigQuery type, mode and the analyst-facing description."""

    name: str
    type: str
    description: str
    mode: str = "NULLABLE"


@dataclass(frozen=True)
class TableDef:
    """A clustered table, DAY-partitioned on partition_field (no partitioning when it is empty)."""

    name: str
    description: str
    partition_field: str
    clustering: tuple[str, ...]
    columns: tuple[Column, ...]
    expiration_setting: str = ""  # the environment variable holding its partition expiration in days

    def column(self, name: str) -> Column:
        """Look up a column by name."""
        return next(c for c in self.columns if c.name == name)


STRING, INT64, TIMESTAMP, JSON = "STRING", "INT64", "TIMESTAMP", "JSON"
DATE, BYTES, FLOAT64 = "DATE", "BYTES", "FLOAT64"
REQ, REP = "REQUIRED", "REPEATED"
