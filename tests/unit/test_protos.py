"""The generated protobuf modules in shared/ are what protoc makes of the .proto files beside them."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
from grpc_tools import protoc

from shared.gateway_pb2 import PublishedBatch, RecordEventsAnswer, RecordEventsBody
from shared.telemetrygateway_pb2 import Event, RecordEventRequest, RecordEventsResponse

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ("shared/telemetrygateway.proto", "shared/gateway.proto")


def test_generated_modules_match_the_proto_files(tmp_path):
    """Regenerate with the pinned grpcio-tools (protoc in process) and compare byte for byte; to update after
    editing a .proto: python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. shared/*.proto"""
    include = importlib.resources.files("grpc_tools") / "_proto"
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            *(str(ROOT / p) for p in PROTOS)]
    assert protoc.main(args) == 0
    for proto in PROTOS:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            generated = proto.replace(".proto", suffix)
            assert (tmp_path / generated).read_bytes() == (ROOT / generated).read_bytes(), (
                f"{generated} is stale: regenerate it (see this test's docstring)")


@pytest.mark.parametrize(("message", "field", "number"), [
    (Event, "id", 1), (Event, "timestamp", 2), (Event, "feature", 3), (Event, "action", 4),
    (Event, "source", 5), (Event, "parameters", 6), (Event, "user", 7), (Event, "feature_flags", 8),
    (Event, "marketing_tracking", 9), (Event, "interaction", 10),
    (RecordEventRequest, "metadata", 1), (RecordEventRequest, "event", 2),
])
def test_sourcegraph_field_numbers(message, field, number):
    """Spot checks of the wire contract (the whole table is in docs/api.md)."""
    assert message.DESCRIPTOR.fields_by_name[field].number == number


def test_a_record_event_request_is_a_body_of_one_event():
    """RecordEventsBody takes RecordEventRequest's field numbers: Sourcegraph's single-event message parses."""
    single = RecordEventRequest()
    single.metadata.request_id = "r"
    single.event.id = "e1"
    body = RecordEventsBody.FromString(single.SerializeToString())
    assert body.metadata.request_id == "r" and [e.id for e in body.events] == ["e1"]


def test_our_answer_reads_as_sourcegraph_s_response():
    answer = RecordEventsAnswer(succeeded_events=["a", "b"])
    answer.failed_events.add(index=2, id="c", reason="invalid_event", message="m")
    assert list(RecordEventsResponse.FromString(answer.SerializeToString()).succeeded_events) == ["a", "b"]


def test_a_body_s_events_are_a_published_batch_s_events():
    """Field 2 in both: ingest publishes the body's events as they arrived, behind the batch's head."""
    body = RecordEventsBody()
    body.events.add(id="x")
    head = PublishedBatch(schema_version=2, request_id="r")
    batch = PublishedBatch.FromString(head.SerializeToString() + body.SerializeToString())
    assert (batch.schema_version, batch.request_id, [e.id for e in batch.events]) == (2, "r", ["x"])
