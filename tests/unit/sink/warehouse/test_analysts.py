"""The analysts' dataset: views over the aggregates only, and the source dataset's authorization entry."""

from __future__ import annotations

import pytest

from shared.sink.warehouse import aggregates, analysts

SRC, MINE = "proj.telemetry", "proj.telemetry_analysts"


def test_one_view_per_aggregate_and_none_over_events():
    statements = analysts.view_statements(SRC, MINE)
    assert len(statements) == len(analysts.OBJECTS)
    assert aggregates.MATERIALIZED_VIEW in analysts.OBJECTS and "metadata_keys" in analysts.OBJECTS
    assert not {"events", "events_deduped", "rejected_events"} & set(analysts.OBJECTS)
    for name, sql in zip(analysts.OBJECTS, statements, strict=True):
        assert sql.startswith(f"CREATE OR REPLACE VIEW `{MINE}.{name}` OPTIONS (description = ")
        assert sql.endswith(f"AS SELECT * FROM `{SRC}.{name}`")
    with pytest.raises(ValueError):
        analysts.view_statements(SRC, SRC)


def test_the_authorization_is_an_authorized_dataset_of_views():
    assert analysts.authorized_dataset_entry(MINE) == {
        "dataset": {"dataset": {"projectId": "proj", "datasetId": "telemetry_analysts"}, "targetTypes": ["VIEWS"]}}
    with pytest.raises(ValueError):
        analysts.authorized_dataset_entry("telemetry_analysts")


def test_the_whole_access_list_is_kept_and_the_entry_added_once():
    live = {"access": [{"role": "OWNER", "specialGroup": "projectOwners"},
                       {"role": "roles/bigquery.dataEditor", "userByEmail": "sink@proj.iam.gserviceaccount.com"}]}
    access = analysts.authorized_access(live, MINE)
    assert access == [*live["access"], analysts.authorized_dataset_entry(MINE)]
    assert analysts.authorized_access({"access": access}, MINE) is None  # a redeploy changes nothing
    assert analysts.authorized_access({}, MINE) == [analysts.authorized_dataset_entry(MINE)]
    other = {"dataset": {"dataset": {"projectId": "proj", "datasetId": "other"}, "targetTypes": ["VIEWS"]}}
    routines = {"dataset": {"dataset": {"projectId": "proj", "datasetId": "telemetry_analysts"},
                            "targetTypes": ["ROUTINES"]}}
    added = analysts.authorized_access({"access": [other, routines]}, MINE)
    assert added == [other, routines, analysts.authorized_dataset_entry(MINE)]
