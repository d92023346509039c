"""Every BigQuery object of the gateway, defined once: the sink uses it at run time, deploy.sh through
`python -m tools.warehouse`, the local pipeline through `fresh_statements`.

columns (a table's shape), tables (the sink's), views, aggregates (the analysts' tables and views),
refresh (the scheduled script), ddl (all SQL that creates or changes an object), migrate (live vs defined).
"""

from __future__ import annotations

from collections.abc import Callable

from shared.sink.warehouse import aggregates, ddl, tables, views
from shared.sink.warehouse.columns import TableDef

# Every table, in creation order: the sink's, then the aggregates'.
TABLES: tuple[TableDef, ...] = (*tables.TABLES, *aggregates.TABLES)


def view_statements(ds: str) -> list[str]:
    """The logical views (replaced in place) and the drops of retired ones."""
    return ([ddl.create_view_sql(f"{ds}.{name}", views.view_sql(name, ds)) for name in views.VIEWS]
            + [ddl.create_view_sql(f"{ds}.{name}", aggregates.view_sql(name, ds)) for name in aggregates.VIEWS]
            + [ddl.drop_view_sql(f"{ds}.{name}") for name in views.RETIRED_VIEWS])


def fresh_statements(ds: str, expiration_days: Callable[[str], int], materialized: bool = True) -> list[str]:
    """Everything a new dataset needs, in order; materialized=False makes the materialized view a plain view
    (the emulator has none). expiration_days maps a table's expiration setting to its days."""
    creates = [ddl.create_table_sql(t, f"{ds}.{t.name}", expiration_days(t.expiration_setting)
                                    if t.expiration_setting else None) for t in TABLES]
    mv = (aggregates.materialized_view_ddl(ds) if materialized else
          ddl.create_view_sql(f"{ds}.{aggregates.MATERIALIZED_VIEW}", aggregates.materialized_view_query(ds)))
    return [*creates, mv, *view_statements(ds)]
