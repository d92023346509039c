"""Events written by protobuf's own JSON mapping (as a protobuf-based instance serializes `Event`) round-trip
exactly into BigQuery: int64 as strings, 9-digit timestamps, integer-valued doubles, snake_case names.

The `Event` message is the project's telemetrygateway.v1 .proto (shared/telemetrygateway.proto), serialized
with google.protobuf.json_format.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests
from google.protobuf import json_format

from tests.integration.messages import BIG, MARKETING, base_event, full_event
from tests.integration.rows import wait_rows

pytestmark = pytest.mark.integration


def post(pipeline, events: list[str]) -> dict:
    metadata = '{"requestId": "proto-1", "identifier": {"licensedInstance": {"instanceId": "inst-columns"}}}'
    body = f'{{"metadata": {metadata}, "events": [{",".join(events)}]}}'
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", data=body.encode(), timeout=30,
                         headers={"Content-Type": "application/json",
                                  "Authorization": f"Bearer {pipeline.issue_license()}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("proto_names", [False, True], ids=["camelCase", "snake_case"])
def test_protobuf_json_round_trips_exactly(pipeline, proto_names):
    when = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=5)
    event = full_event(when)
    text = json_format.MessageToJson(event, preserving_proto_field_name=proto_names, indent=None)
    assert f'"{BIG}"' in text and ".123456789Z" in text  # int64 as strings, 9 fractional digits
    answer = post(pipeline, [text])
    assert answer["succeededEvents"] == [event.id], answer
    (row,) = wait_rows(pipeline, "events", [event.id], 1)
    assert row.timestamp == when  # BigQuery keeps microseconds: the 7th-9th digits are cut, as documented
    assert row.metadata == {"big": BIG, "max": 2**63 - 1, "min": -(2**63), "zero": 0, "whole": 42.0, "half": 0.5,
                            "tiny": 1e-300, "both": 1.5}
    assert type(row.metadata["big"]) is int and row.user_id == BIG
    assert row.private_metadata == {"languageId": "go", "ratio": 0.25, "nested": {"list": [1, "a", None]}}
    assert (row.billing_product, row.billing_category, row.parameters_version) == ("CODY", "CORE", 2)
    assert (row.server_version, row.client_name, row.client_version) == ("5.11.0", "VSCODE_CODY_EXTENSION", "1.90.0")
    assert (row.anonymous_user_id, row.sams_external_id) == ("anon-9", "sams-9")
    assert row.feature_flags == {"cody-autocomplete": "true", "new-nav": "false"}
    assert row.marketing_tracking == {json_format_name(name, proto_names=False): f"value-{n}"
                                      for n, name in enumerate(MARKETING)}
    assert (row.interaction_trace_id, row.interaction_id, row.country_code) == ("trace-1", "interaction-1", "DE")
    assert row.extra is None  # nothing misplaced into extra


def json_format_name(field: str, proto_names: bool) -> str:
    """The camelCase JSON name of a proto field name."""
    head, *rest = field.split("_")
    return field if proto_names else head + "".join(p.title() for p in rest)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_doubles_are_refused_clearly(pipeline, value):
    event = base_event(datetime.now(UTC))
    event.parameters.metadata["x"] = float(value.replace("Infinity", "inf"))
    text = json_format.MessageToJson(event, indent=None)
    assert f'"{value}"' in text
    (failure,) = post(pipeline, [text])["failedEvents"]
    assert failure["reason"] == "invalid_event" and "finite" in failure["message"]


def test_explicit_nulls_mean_absent(pipeline):
    event = orjson.loads(json_format.MessageToJson(full_event(datetime.now(UTC) - timedelta(minutes=1)), indent=None))
    event.update({"user": None, "marketingTracking": None, "interaction": None})
    event["parameters"]["privateMetadata"] = None
    answer = post(pipeline, [orjson.dumps(event).decode()])
    assert answer["succeededEvents"] == [event["id"]]
    (row,) = wait_rows(pipeline, "events", [event["id"]], 1)
    assert (row.user_id, row.marketing_tracking, row.interaction_trace_id, row.private_metadata) == (
        None, None, None, None)
    assert row.redacted_fields == []  # nothing was sent, so nothing was removed
