"""The analysts' dataset: what analysts may read, without any access to `events` (docs/analysts.md).

BigQuery checks a materialized view's base table too: querying `daily_active_instances` needs read access to
`events` ("Use materialized views": the Data Viewer role "on the base table of the materialized view and the
materialized view itself"), so a grant of the aggregates in the events' dataset cannot leave `events` out.
Instead a separate dataset holds one logical view per aggregate (`SELECT * FROM` it), and the events' dataset
authorizes that dataset's views (an authorized dataset: an access entry `{"dataset": {...}, "targetTypes":
["VIEWS"]}`). The views read the aggregates, the materialized view and, through it, `events` with the
authorization; analysts granted the analysts' dataset read the views and nothing of the source dataset.
"""

from __future__ import annotations

from shared.sink.warehouse import aggregates, ddl

# Everything analysts read: the aggregate tables (with `aggregate_runs`, the refreshes' record), the
# materialized view and the catalogue view. Never `events`, `events_deduped` or `rejected_events`.
OBJECTS: tuple[str, ...] = (*(t.name for t in aggregates.TABLES), aggregates.MATERIALIZED_VIEW,
                            *aggregates.VIEWS)
DESCRIPTIONS = {**{t.name: t.description for t in aggregates.TABLES},
                aggregates.MATERIALIZED_VIEW: aggregates.MATERIALIZED_VIEW_DESCRIPTION}
READER_ROLE = "roles/bigquery.dataViewer"  # what analysts are granted, on the analysts' dataset only


def _split(dataset_ref: str) -> tuple[str, str]:
    project, _, dataset = dataset_ref.partition(".")
    if not project or not dataset or "." in dataset:
        raise ValueError(f"not PROJECT.DATASET: {dataset_ref!r}")
    return project, dataset


def view_statements(source: str, analysts: str) -> list[str]:
    """One view per object analysts read, in the analysts' dataset, replaced in place on every deploy (its
    schema follows its source; the authorization is the dataset's, so a replaced view keeps it)."""
    if _split(source) == _split(analysts):
        raise ValueError("the analysts' dataset must not be the source dataset")
    return [ddl.create_view_sql(f"{analysts}.{name}", f"SELECT * FROM `{source}.{name}`",
                                description=DESCRIPTIONS.get(name, f"{name} (from {source})"))
            for name in OBJECTS]


def authorized_dataset_entry(analysts: str) -> dict:
    """The source dataset's access entry that lets every view of the analysts' dataset read it."""
    project, dataset = _split(analysts)
    return {"dataset": {"dataset": {"projectId": project, "datasetId": dataset}, "targetTypes": ["VIEWS"]}}


def is_authorized(entry: dict, analysts: str) -> bool:
    """Whether an access entry already authorizes the analysts' dataset's views."""
    project, dataset = _split(analysts)
    granted = entry.get("dataset")
    if not isinstance(granted, dict):
        return False
    ref = granted.get("dataset") or {}
    return (ref.get("projectId"), ref.get("datasetId")) == (project, dataset) and "VIEWS" in granted.get(
        "targetTypes", [])


def authorized_access(source_resource: dict, analysts: str) -> list[dict] | None:
    """The source dataset's whole access list with the analysts' dataset authorized, or None when it already is.

    A patch replaces the access list ("To add entities, you must supply the entire existing access array"),
    so every entry of the live dataset is kept, in order."""
    access = source_resource.get("access", [])
    if not isinstance(access, list):
        raise ValueError("the dataset's access is not a list")
    if any(isinstance(e, dict) and is_authorized(e, analysts) for e in access):
        return None
    return [*access, authorized_dataset_entry(analysts)]
