"""Logical views over the sink's tables, and the views of earlier releases that deploys drop."""

from __future__ import annotations

VIEWS = {
    "events_deduped": """
SELECT * EXCEPT (delivery)
FROM (
  SELECT *, ROW_NUMBER() OVER (
    PARTITION BY license_fingerprint, instance_id, event_id, `timestamp`, feature, action
    ORDER BY received_at, inserted_at, message_id) AS delivery
  FROM `{dataset}.events`)
WHERE delivery = 1""",
}
# Views of earlier releases, dropped on deploy: daily_event_counts summed `instances` into double counts
# (now daily_feature_usage with sketches); instances_last_seen scanned 400 days a call (now `instances`).
RETIRED_VIEWS = ("daily_event_counts", "instances_last_seen")


def view_sql(name: str, dataset: str) -> str:
    """The view's query with its dataset filled in (dataset as `project.dataset` or `dataset`)."""
    return VIEWS[name].format(dataset=dataset).strip()
