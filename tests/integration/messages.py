"""Events as telemetrygateway.v1.Event messages (the project's .proto) and protobuf requests to ingest."""

from __future__ import annotations

import uuid
from datetime import datetime

import requests
from google.protobuf import json_format

from shared.telemetrygateway_pb2 import Event, EventMarketingTracking
from tools import wire

BIG = 9007199254740993  # 2^53 + 1: lost by any float
MARKETING = [f.name for f in EventMarketingTracking.DESCRIPTOR.fields]


def base_event(when: datetime) -> Event:
    """The required fields only."""
    event = Event(id=str(uuid.uuid4()), feature="cody.completion", action="accepted")
    event.timestamp.FromDatetime(when.replace(tzinfo=None))
    event.source.server.version = "5.11.0"
    return event


def full_event(when: datetime) -> Event:
    """Every field filled, values chosen to expose float rounding and precision loss; 9 fractional digits."""
    event = base_event(when)
    event.timestamp.nanos = when.microsecond * 1000 + 789
    event.source.client.name, event.source.client.version = "VSCODE_CODY_EXTENSION", "1.90.0"
    event.parameters.version = 2
    event.parameters.legacy_metadata.update({"big": BIG, "max": 2**63 - 1, "min": -(2**63), "zero": 0, "both": 7})
    event.parameters.metadata.update({"whole": 42.0, "half": 0.5, "tiny": 1e-300, "both": 1.5})
    event.parameters.private_metadata.update({"languageId": "go", "ratio": 0.25, "nested": {"list": [1, "a", None]}})
    event.parameters.billing_metadata.product, event.parameters.billing_metadata.category = "CODY", "CORE"
    event.user.user_id, event.user.anonymous_user_id, event.user.sams_external_id = BIG, "anon-9", "sams-9"
    event.feature_flags.flags.update({"cody-autocomplete": "true", "new-nav": "false"})
    for n, name in enumerate(MARKETING):
        setattr(event.marketing_tracking, name, f"value-{n}")
    event.interaction.trace_id, event.interaction.interaction_id = "trace-1", "interaction-1"
    event.interaction.geolocation.country_code = "DE"
    return event


def zero_event(when: datetime) -> Event:
    """Every `optional` field present at its zero value, and empty containers (presence, not absence)."""
    event = base_event(when)
    event.source.client.name, event.source.client.version = "", ""
    event.parameters.version = 0
    event.parameters.metadata["zero"] = 0.0
    event.parameters.legacy_metadata["low"] = -(2**63)
    event.parameters.private_metadata.SetInParent()
    event.parameters.billing_metadata.SetInParent()
    event.user.user_id, event.user.anonymous_user_id, event.user.sams_external_id = 0, "", ""
    event.feature_flags.SetInParent()
    event.marketing_tracking.url = ""
    event.interaction.trace_id = ""
    event.interaction.geolocation.SetInParent()
    return event


def varint(value: int) -> bytes:
    """A protobuf base-128 varint (a non-negative value)."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2): a string, bytes or a message, written by hand."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def as_json(event: Event) -> dict:
    """The event in proto3 JSON, as a protobuf-based client writes it (zero values of plain fields left out)."""
    return json_format.MessageToDict(event)


def post_protobuf(url: str, metadata: dict, events: list[Event], license_key: str | None = None,
                  accept: str = wire.CONTENT_TYPE) -> requests.Response:
    """POST a RecordEventsBody; the license in the Authorization header when given."""
    headers = {"Content-Type": wire.CONTENT_TYPE, "Accept": accept,
               **({"Authorization": f"Bearer {license_key}"} if license_key else {})}
    return requests.post(f"{url}/v1/events", data=wire.encode_body(metadata, events), headers=headers, timeout=30)


def licensed(instance_id: str, license_key: str | None = None, request_id: str = "req-proto",
             external_url: str | None = None) -> dict:
    """Request metadata of a licensed instance (the key in the body when given)."""
    instance = {"instanceId": instance_id, **({"licenseKey": license_key} if license_key else {}),
                **({"externalUrl": external_url} if external_url else {})}
    return {"requestId": request_id, "identifier": {"licensedInstance": instance}}
