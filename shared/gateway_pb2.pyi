from shared import telemetrygateway_pb2 as _telemetrygateway_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordEventsBody(_message.Message):
    __slots__ = ("metadata", "events")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    metadata: _telemetrygateway_pb2.RecordEventsRequestMetadata
    events: _containers.RepeatedCompositeFieldContainer[_telemetrygateway_pb2.Event]
    def __init__(self, metadata: _Optional[_Union[_telemetrygateway_pb2.RecordEventsRequestMetadata, _Mapping]] = ..., events: _Optional[_Iterable[_Union[_telemetrygateway_pb2.Event, _Mapping]]] = ...) -> None: ...

class RecordEventsAnswer(_message.Message):
    __slots__ = ("succeeded_events", "failed_events", "warnings")
    SUCCEEDED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    succeeded_events: _containers.RepeatedScalarFieldContainer[str]
    failed_events: _containers.RepeatedCompositeFieldContainer[EventFailure]
    warnings: _containers.RepeatedCompositeFieldContainer[EventWarning]
    def __init__(self, succeeded_events: _Optional[_Iterable[str]] = ..., failed_events: _Optional[_Iterable[_Union[EventFailure, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[EventWarning, _Mapping]]] = ...) -> None: ...

class EventWarning(_message.Message):
    __slots__ = ("index", "id", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    code: str
    message: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EventFailure(_message.Message):
    __slots__ = ("index", "id", "reason", "message", "retryable")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    reason: str
    message: str
    retryable: bool
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., retryable: bool = ...) -> None: ...

class CallerIdentity(_message.Message):
    __slots__ = ("kind", "instance_id", "external_url", "license_fingerprint", "license_tags", "environment", "service_environment", "caller_email")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_URL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TAGS_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    CALLER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    instance_id: str
    external_url: str
    license_fingerprint: str
    license_tags: _containers.RepeatedScalarFieldContainer[str]
    environment: str
    service_environment: str
    caller_email: str
    def __init__(self, kind: _Optional[str] = ..., instance_id: _Optional[str] = ..., external_url: _Optional[str] = ..., license_fingerprint: _Optional[str] = ..., license_tags: _Optional[_Iterable[str]] = ..., environment: _Optional[str] = ..., service_environment: _Optional[str] = ..., caller_email: _Optional[str] = ...) -> None: ...

class RedactedFields(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fields: _Optional[_Iterable[str]] = ...) -> None: ...

class PublishedBatch(_message.Message):
    __slots__ = ("events", "schema_version", "request_id", "received_at", "identity", "redacted")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REDACTED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_telemetrygateway_pb2.Event]
    schema_version: int
    request_id: str
    received_at: str
    identity: CallerIdentity
    redacted: _containers.RepeatedCompositeFieldContainer[RedactedFields]
    def __init__(self, events: _Optional[_Iterable[_Union[_telemetrygateway_pb2.Event, _Mapping]]] = ..., schema_version: _Optional[int] = ..., request_id: _Optional[str] = ..., received_at: _Optional[str] = ..., identity: _Optional[_Union[CallerIdentity, _Mapping]] = ..., redacted: _Optional[_Iterable[_Union[RedactedFields, _Mapping]]] = ...) -> None: ...
