"""Events written by protobuf's own JSON mapping (as a protobuf-based instance serializes `Event`) round-trip
exactly into BigQuery: int64 as strings, 9-digit timestamps, integer-valued doubles, snake_case names.

The `Event` message is built from the field table of the telemetry v2 proto (telemetrygateway.proto), at
run time with descriptor_pb2 (no protoc needed), and serialized with google.protobuf.json_format.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, struct_pb2, timestamp_pb2

from tests.integration.rows import wait_rows

pytestmark = pytest.mark.integration
F = descriptor_pb2.FieldDescriptorProto
STRING, INT32, INT64, DOUBLE, MESSAGE = F.TYPE_STRING, F.TYPE_INT32, F.TYPE_INT64, F.TYPE_DOUBLE, F.TYPE_MESSAGE
MESSAGES = {  # name -> [(field, number, type, type_name or None)]
    "EventSource": [("server", 1, MESSAGE, "EventSource.Server"), ("client", 2, MESSAGE, "EventSource.Client")],
    "EventSource.Server": [("version", 1, STRING, None)],
    "EventSource.Client": [("name", 1, STRING, None), ("version", 2, STRING, None)],
    "EventParameters": [("version", 1, INT32, None), ("legacy_metadata", 2, "map", INT64),
                        ("metadata", 5, "map", DOUBLE), ("private_metadata", 3, MESSAGE, ".google.protobuf.Struct"),
                        ("billing_metadata", 4, MESSAGE, "EventBillingMetadata")],
    "EventBillingMetadata": [("product", 1, STRING, None), ("category", 2, STRING, None)],
    "EventUser": [("user_id", 1, INT64, None), ("anonymous_user_id", 2, STRING, None),
                  ("sams_external_id", 3, STRING, None)],
    "EventFeatureFlags": [("flags", 1, "map", STRING)],
    "EventMarketingTracking": [(name, n, STRING, None) for n, name in enumerate(
        ("url", "first_source_url", "cohort_id", "referrer", "last_source_url", "device_session_id",
         "session_referrer", "session_first_url"), 1)],
    "EventInteraction": [("trace_id", 1, STRING, None), ("interaction_id", 2, STRING, None),
                         ("geolocation", 3, MESSAGE, "EventInteraction.Geolocation")],
    "EventInteraction.Geolocation": [("country_code", 1, STRING, None)],
    "Event": [("id", 1, STRING, None), ("feature", 2, STRING, None), ("action", 3, STRING, None),
              ("source", 4, MESSAGE, "EventSource"), ("parameters", 5, MESSAGE, "EventParameters"),
              ("user", 6, MESSAGE, "EventUser"), ("feature_flags", 7, MESSAGE, "EventFeatureFlags"),
              ("marketing_tracking", 8, MESSAGE, "EventMarketingTracking"),
              ("timestamp", 9, MESSAGE, ".google.protobuf.Timestamp"),
              ("interaction", 10, MESSAGE, "EventInteraction")],
}


def _build() -> type:
    """The Event message class, from the table above (package telemetrygateway.test)."""
    file = descriptor_pb2.FileDescriptorProto(name=f"event_{uuid.uuid4().hex}.proto", package="tg", syntax="proto3",
                                              dependency=["google/protobuf/struct.proto",
                                                          "google/protobuf/timestamp.proto"])
    protos: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name in MESSAGES:
        parent, _, leaf = name.rpartition(".")
        protos[name] = (protos[parent].nested_type.add(name=leaf) if parent else file.message_type.add(name=leaf))
    for name, fields in MESSAGES.items():
        proto = protos[name]
        for field, number, kind, type_name in fields:
            if kind == "map":  # map<string, V>: a nested MapEntry message and a repeated field of it
                entry = proto.nested_type.add(name="".join(p.title() for p in field.split("_")) + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=STRING, label=F.LABEL_OPTIONAL)
                entry.field.add(name="value", number=2, type=type_name, label=F.LABEL_OPTIONAL)
                proto.field.add(name=field, number=number, type=MESSAGE, label=F.LABEL_REPEATED,
                                type_name=f".tg.{name}.{entry.name}")
            else:
                full = type_name if type_name is None or type_name.startswith(".") else f".tg.{type_name}"
                proto.field.add(name=field, number=number, type=kind, label=F.LABEL_OPTIONAL,
                                **({"type_name": full} if full else {}))
    pool = descriptor_pool.DescriptorPool()
    for dependency in (struct_pb2, timestamp_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tg.Event"))


EVENT = _build()
BIG = 9007199254740993  # 2^53 + 1: lost by any float


def full_event(when: datetime) -> object:
    """Every field filled, values chosen to expose float rounding and precision loss."""
    event = EVENT(id=str(uuid.uuid4()), feature="cody.completion", action="accepted")
    event.timestamp.FromDatetime(when.replace(tzinfo=None))
    event.timestamp.nanos = when.microsecond * 1000 + 789  # 9 fractional digits on the wire
    event.source.server.version = "5.11.0"
    event.source.client.name, event.source.client.version = "VSCODE_CODY_EXTENSION", "1.90.0"
    event.parameters.version = 2
    event.parameters.legacy_metadata.update({"big": BIG, "max": 2**63 - 1, "min": -(2**63), "zero": 0})
    event.parameters.metadata.update({"whole": 42.0, "half": 0.5, "tiny": 1e-300})
    event.parameters.private_metadata.update({"languageId": "go", "ratio": 0.25})
    event.parameters.billing_metadata.product, event.parameters.billing_metadata.category = "CODY", "CORE"
    event.user.user_id, event.user.anonymous_user_id, event.user.sams_external_id = BIG, "anon-9", "sams-9"
    event.feature_flags.flags.update({"cody-autocomplete": "true", "new-nav": "false"})
    for n, field in enumerate(MESSAGES["EventMarketingTracking"]):
        setattr(event.marketing_tracking, field[0], f"value-{n}")
    event.interaction.trace_id, event.interaction.interaction_id = "trace-1", "interaction-1"
    event.interaction.geolocation.country_code = "DE"
    return event


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
                            "tiny": 1e-300}
    assert type(row.metadata["big"]) is int and row.user_id == BIG
    assert row.private_metadata == {"languageId": "go", "ratio": 0.25}
    assert (row.billing_product, row.billing_category, row.parameters_version) == ("CODY", "CORE", 2)
    assert (row.server_version, row.client_name, row.client_version) == ("5.11.0", "VSCODE_CODY_EXTENSION", "1.90.0")
    assert (row.anonymous_user_id, row.sams_external_id) == ("anon-9", "sams-9")
    assert row.feature_flags == {"cody-autocomplete": "true", "new-nav": "false"}
    assert row.marketing_tracking == {json_format_name(f[0], proto_names=False): f"value-{n}"
                                      for n, f in enumerate(MESSAGES["EventMarketingTracking"])}
    assert (row.interaction_trace_id, row.interaction_id, row.country_code) == ("trace-1", "interaction-1", "DE")
    assert row.extra is None  # nothing misplaced into extra


def json_format_name(field: str, proto_names: bool) -> str:
    """The camelCase JSON name of a proto field name."""
    head, *rest = field.split("_")
    return field if proto_names else head + "".join(p.title() for p in rest)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_doubles_are_refused_clearly(pipeline, value):
    event = EVENT(id=str(uuid.uuid4()), feature="cody.completion", action="accepted")
    event.timestamp.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    event.source.server.version = "5.11.0"
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
