"""The Pub/Sub messages ingest publishes: one gzip'd batch per accepted request, and request-log records.

schemaVersion 1: a JSON document (a JSON request's events). schemaVersion 2: a `PublishedBatch` protobuf
message (shared/gateway.proto; a protobuf request's events as they arrived). The sink reads both:
during a rollout, messages of the previous release are still in the backlog.

Request-log messages travel on the same topic, told apart by the attribute `recordType=requests` (absent on
batches): a gzip'd JSON document `{"schemaVersion": 1, "requests": [row, ...]}` of `requests` table rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from google.protobuf.message import DecodeError
from isal import igzip, isal_zlib

from shared import jsontext
from shared.gateway_pb2 import CallerIdentity, PublishedBatch, RedactedFields

SCHEMA_VERSION = 1
PROTOBUF_SCHEMA_VERSION = 2
JSON_WIRE, PROTOBUF_WIRE = "json", "protobuf"
ENCODINGS = ("gzip", "identity")
# The largest batch (decompressed request) one message may carry: gzip only shrinks it, and the
# envelope's head and attributes fit in the remaining headroom.
MAX_BATCH_BYTES = 9 * 1024 * 1024
MAX_MESSAGE_BODY = MAX_BATCH_BYTES + 1024 * 1024  # a decoded message: the batch and its envelope head


RECORD_TYPE = "recordType"  # the attribute naming a message's kind; absent: an events batch
REQUESTS_RECORD_TYPE = "requests"
REQUESTS_SCHEMA_VERSION = 1


# Why a message can never be loaded: code -> what it means (the sink's poison_message log and the redrive's counts
# carry the code; the dead-letter alert's text lists them).
POISON_REASONS = {
    "no_pubsub_message": "the CloudEvent carries no Pub/Sub message",
    "data_not_base64": "the message data is not base64",
    "no_message_id": "the message has no messageId",
    "unknown_encoding": "the encoding attribute is neither gzip nor identity",
    "undecodable_payload": "the payload is not gzip, JSON or protobuf as its attributes say",
    "too_large": f"the decoded payload is over {MAX_MESSAGE_BODY} bytes",
    "unsupported_schema_version": "a schemaVersion this release does not read",
    "envelope_incomplete": "the envelope lacks the identity, events or receive time",
    "events_not_a_list": "the envelope's events are not a list",
    "redacted_fields_mismatch": "the redacted fields do not match the events",
    "envelope_unusable": "the envelope's shared columns cannot be written (e.g. its receive time)",
    "undecodable_request_log": "a request-log message that is not gzip'd JSON",
    "unsupported_request_log_version": "a request log of a schemaVersion this release does not read",
    "request_log_incomplete": "a request log whose requests are not a list of objects",
}


class PoisonMessage(ValueError):
    """A message that can never be decoded, whatever its events hold; the sink lets it go to the dead-letter
    topic. reason: a code of POISON_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in POISON_REASONS:
            raise ValueError(f"unknown poison reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Identity:
    """Who sent the batch, as established by the ingest function (never the license key itself)."""

    instance_id: str
    external_url: str | None
    license_fingerprint: str | None
    license_tags: tuple[str, ...]
    environment: str
    kind: str  # licensed_instance | unlicensed_instance | managed_service
    service_environment: str | None = None  # managed services: metadata.identifier.managedService
    caller_email: str | None = None  # managed services: the ID token's verified email

    def as_json(self) -> dict:
        """JSON form inside the envelope."""
        return {
            "kind": self.kind,
            "instanceId": self.instance_id,
            "externalUrl": self.external_url,
            "licenseFingerprint": self.license_fingerprint,
            "licenseTags": list(self.license_tags),
            "environment": self.environment,
            **({"serviceEnvironment": self.service_environment} if self.service_environment else {}),
            **({"callerEmail": self.caller_email} if self.caller_email else {}),
        }

    def as_message(self) -> CallerIdentity:
        """Protobuf form inside a schemaVersion 2 message (unset optional fields stay unset)."""
        optional = {"external_url": self.external_url, "license_fingerprint": self.license_fingerprint,
                    "service_environment": self.service_environment, "caller_email": self.caller_email}
        return CallerIdentity(kind=self.kind, instance_id=self.instance_id, license_tags=self.license_tags,
                              environment=self.environment, **{k: v for k, v in optional.items() if v is not None})

    @classmethod
    def from_message(cls, message: CallerIdentity) -> Identity:
        """Inverse of as_message."""
        def optional(name: str) -> str | None:
            return getattr(message, name) if message.HasField(name) else None

        return cls(instance_id=message.instance_id, external_url=optional("external_url"),
                   license_fingerprint=optional("license_fingerprint"), license_tags=tuple(message.license_tags),
                   environment=message.environment, kind=message.kind,
                   service_environment=optional("service_environment"), caller_email=optional("caller_email"))

    @classmethod
    def from_json(cls, data: dict) -> Identity:
        """Inverse of as_json."""
        return cls(
            instance_id=data["instanceId"],
            external_url=data.get("externalUrl"),
            license_fingerprint=data.get("licenseFingerprint"),
            license_tags=tuple(data.get("licenseTags") or ()),
            environment=data["environment"],
            kind=data.get("kind", "licensed_instance"),
            service_environment=data.get("serviceEnvironment"),
            caller_email=data.get("callerEmail"),
        )


@dataclass(frozen=True)
class Batch:
    """A decoded message: identity, request id, receive time and events."""

    identity: Identity
    request_id: str | None
    received_at: str
    events: list  # JSON objects (schemaVersion 1) or telemetrygateway.v1.Event messages (2)
    redacted: list[list[str]] | None = None  # per event, the fields ingest removed by policy
    wire: str = JSON_WIRE  # how the events are held: JSON_WIRE or PROTOBUF_WIRE


def encode(batch: Batch, gzip_level: int = 1, extra_attributes: dict | None = None,
           events_json: list[bytes] | None = None) -> tuple[bytes, dict]:
    """Message data and attributes for a batch (events_json: the events already serialized, in order)."""
    head = orjson.dumps({
        "schemaVersion": SCHEMA_VERSION,
        "requestId": batch.request_id,
        "receivedAt": batch.received_at,
        "identity": batch.identity.as_json(),
        **({"redactedFields": batch.redacted} if batch.redacted and any(batch.redacted) else {}),
    })
    parts = events_json if events_json is not None else [orjson.dumps(e) for e in batch.events]
    body = b"".join((head[:-1], b',"events":[', b",".join(parts), b"]}"))
    data = igzip.compress(body, gzip_level)  # ISA-L: standard gzip, several times faster than zlib
    return data, _attributes(batch, SCHEMA_VERSION, "application/json", extra_attributes)


def _attributes(batch: Batch, version: int, content_type: str, extra: dict | None) -> dict:
    return {
        "schemaVersion": str(version),
        "encoding": "gzip",
        "contentType": content_type,
        "instanceId": batch.identity.instance_id,
        "environment": batch.identity.environment,
        "eventCount": str(len(batch.events)),
        "requestId": batch.request_id or "",
        **(extra or {}),
    }


def encode_protobuf(batch: Batch, events_bytes: bytes, gzip_level: int = 1,
                    extra_attributes: dict | None = None) -> tuple[bytes, dict]:
    """A schemaVersion 2 message: the head's fields, then the events as serialized (field 2 of a
    RecordEventsBody is field 2 of a PublishedBatch, and protobuf concatenation is a merge)."""
    head = PublishedBatch(schema_version=PROTOBUF_SCHEMA_VERSION, request_id=batch.request_id or "",
                          received_at=batch.received_at, identity=batch.identity.as_message())
    if batch.redacted and any(batch.redacted):
        head.redacted.extend(RedactedFields(fields=fields) for fields in batch.redacted)
    data = igzip.compress(head.SerializeToString() + events_bytes, gzip_level)
    return data, _attributes(batch, PROTOBUF_SCHEMA_VERSION, "application/x-protobuf", extra_attributes)


def _inflate(data: bytes) -> bytes:
    """Gunzip at most MAX_MESSAGE_BODY + 1 bytes: a corrupt stream or a gzip bomb is poison, not an outage."""
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    try:
        body = inflater.decompress(data, MAX_MESSAGE_BODY + 1)
    except (isal_zlib.error, ValueError) as exc:  # ISA-L raises its own error type, not zlib.error
        raise PoisonMessage("undecodable_payload", f"not gzip: {exc}") from None
    if len(body) <= MAX_MESSAGE_BODY and not inflater.eof:
        raise PoisonMessage("undecodable_payload", "gzip stream is truncated")
    return body


def decode(data: bytes, attributes: dict) -> Batch:
    """Decode a message written by encode(); raise PoisonMessage if it never can be."""
    encoding = attributes.get("encoding", "identity")
    if encoding not in ENCODINGS:
        raise PoisonMessage("unknown_encoding", f"encoding {encoding!r}")
    body = _inflate(data) if encoding == "gzip" else data
    if len(body) > MAX_MESSAGE_BODY:
        raise PoisonMessage("too_large", f"payload over {MAX_MESSAGE_BODY} bytes")
    if attributes.get("schemaVersion") == str(PROTOBUF_SCHEMA_VERSION):
        return _decode_protobuf(body)
    try:
        doc = jsontext.loads(body)
    except jsontext.JSONTextError as exc:
        raise PoisonMessage("undecodable_payload", f"not JSON: {exc}") from None
    version = doc.get("schemaVersion") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise PoisonMessage("unsupported_schema_version", f"schemaVersion {version!r}")
    try:
        identity = Identity.from_json(doc["identity"])
        events = doc["events"]
        received_at = doc["receivedAt"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise PoisonMessage("envelope_incomplete", f"envelope is missing {exc}") from None
    if not isinstance(events, list):
        raise PoisonMessage("events_not_a_list", "events is not a list")
    redacted = doc.get("redactedFields")
    if redacted is not None and not (
            isinstance(redacted, list) and len(redacted) == len(events)
            and all(isinstance(r, list) and all(isinstance(f, str) for f in r) for r in redacted)):
        raise PoisonMessage("redacted_fields_mismatch", "redactedFields does not match the events")
    return Batch(identity, doc.get("requestId"), received_at, events, redacted)


def _decode_protobuf(body: bytes) -> Batch:
    """A schemaVersion 2 message's batch; its events stay messages."""
    try:
        message = PublishedBatch.FromString(body)
    except DecodeError as exc:
        raise PoisonMessage("undecodable_payload", f"not a PublishedBatch: {exc}") from None
    if message.schema_version != PROTOBUF_SCHEMA_VERSION or not message.HasField("identity"):
        raise PoisonMessage("unsupported_schema_version", f"not a schemaVersion {PROTOBUF_SCHEMA_VERSION} batch "
                            f"(schema_version "
                            f"{message.schema_version}, identity {'set' if message.HasField('identity') else 'unset'})")
    redacted = [list(r.fields) for r in message.redacted] or None
    if redacted is not None and len(redacted) != len(message.events):
        raise PoisonMessage("redacted_fields_mismatch", "redacted does not match the events")
    return Batch(Identity.from_message(message.identity), message.request_id or None, message.received_at,
                 message.events, redacted, PROTOBUF_WIRE)


def is_requests(attributes: dict) -> bool:
    """Whether a message carries request-log rows rather than events."""
    return attributes.get(RECORD_TYPE) == REQUESTS_RECORD_TYPE


def encode_requests(rows: list[dict], gzip_level: int = 1) -> tuple[bytes, dict]:
    """Message data and attributes for request-log rows."""
    body = orjson.dumps({"schemaVersion": REQUESTS_SCHEMA_VERSION, "requests": rows})
    return igzip.compress(body, gzip_level), {
        RECORD_TYPE: REQUESTS_RECORD_TYPE, "schemaVersion": str(REQUESTS_SCHEMA_VERSION), "encoding": "gzip",
        "contentType": "application/json", "rowCount": str(len(rows))}


def decode_requests(data: bytes, attributes: dict) -> list[dict]:
    """The rows of a message written by encode_requests(); PoisonMessage if it never can be read."""
    body = _inflate(data) if attributes.get("encoding") == "gzip" else data
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage("undecodable_request_log", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != REQUESTS_SCHEMA_VERSION:
        raise PoisonMessage("unsupported_request_log_version", "not a request log of schemaVersion 1")
    rows = doc.get("requests")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise PoisonMessage("request_log_incomplete", "requests is not a list of objects")
    return rows
