import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Identifier(_message.Message):
    __slots__ = ("licensed_instance", "unlicensed_instance", "managed_service")
    class LicensedInstanceIdentifier(_message.Message):
        __slots__ = ("license_key", "instance_id", "external_url")
        LICENSE_KEY_FIELD_NUMBER: _ClassVar[int]
        INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
        EXTERNAL_URL_FIELD_NUMBER: _ClassVar[int]
        license_key: str
        instance_id: str
        external_url: str
        def __init__(self, license_key: _Optional[str] = ..., instance_id: _Optional[str] = ..., external_url: _Optional[str] = ...) -> None: ...
    class UnlicensedInstanceIdentifier(_message.Message):
        __slots__ = ("instance_id", "external_url")
        INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
        EXTERNAL_URL_FIELD_NUMBER: _ClassVar[int]
        instance_id: str
        external_url: str
        def __init__(self, instance_id: _Optional[str] = ..., external_url: _Optional[str] = ...) -> None: ...
    class ManagedServiceIdentifier(_message.Message):
        __slots__ = ("service_id", "service_environment")
        SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
        SERVICE_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        service_id: str
        service_environment: str
        def __init__(self, service_id: _Optional[str] = ..., service_environment: _Optional[str] = ...) -> None: ...
    LICENSED_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    UNLICENSED_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    MANAGED_SERVICE_FIELD_NUMBER: _ClassVar[int]
    licensed_instance: Identifier.LicensedInstanceIdentifier
    unlicensed_instance: Identifier.UnlicensedInstanceIdentifier
    managed_service: Identifier.ManagedServiceIdentifier
    def __init__(self, licensed_instance: _Optional[_Union[Identifier.LicensedInstanceIdentifier, _Mapping]] = ..., unlicensed_instance: _Optional[_Union[Identifier.UnlicensedInstanceIdentifier, _Mapping]] = ..., managed_service: _Optional[_Union[Identifier.ManagedServiceIdentifier, _Mapping]] = ...) -> None: ...

class RecordEventsRequestMetadata(_message.Message):
    __slots__ = ("request_id", "identifier")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    identifier: Identifier
    def __init__(self, request_id: _Optional[str] = ..., identifier: _Optional[_Union[Identifier, _Mapping]] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("metadata", "events")
    class EventsPayload(_message.Message):
        __slots__ = ("events",)
        EVENTS_FIELD_NUMBER: _ClassVar[int]
        events: _containers.RepeatedCompositeFieldContainer[Event]
        def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    metadata: RecordEventsRequestMetadata
    events: RecordEventsRequest.EventsPayload
    def __init__(self, metadata: _Optional[_Union[RecordEventsRequestMetadata, _Mapping]] = ..., events: _Optional[_Union[RecordEventsRequest.EventsPayload, _Mapping]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("succeeded_events",)
    SUCCEEDED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    succeeded_events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, succeeded_events: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordEventRequest(_message.Message):
    __slots__ = ("metadata", "event")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    metadata: RecordEventsRequestMetadata
    event: Event
    def __init__(self, metadata: _Optional[_Union[RecordEventsRequestMetadata, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "timestamp", "feature", "action", "source", "parameters", "user", "feature_flags", "marketing_tracking", "interaction")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    MARKETING_TRACKING_FIELD_NUMBER: _ClassVar[int]
    INTERACTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    timestamp: _timestamp_pb2.Timestamp
    feature: str
    action: str
    source: EventSource
    parameters: EventParameters
    user: EventUser
    feature_flags: EventFeatureFlags
    marketing_tracking: EventMarketingTracking
    interaction: EventInteraction
    def __init__(self, id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., feature: _Optional[str] = ..., action: _Optional[str] = ..., source: _Optional[_Union[EventSource, _Mapping]] = ..., parameters: _Optional[_Union[EventParameters, _Mapping]] = ..., user: _Optional[_Union[EventUser, _Mapping]] = ..., feature_flags: _Optional[_Union[EventFeatureFlags, _Mapping]] = ..., marketing_tracking: _Optional[_Union[EventMarketingTracking, _Mapping]] = ..., interaction: _Optional[_Union[EventInteraction, _Mapping]] = ...) -> None: ...

class EventSource(_message.Message):
    __slots__ = ("server", "client")
    class Server(_message.Message):
        __slots__ = ("version",)
        VERSION_FIELD_NUMBER: _ClassVar[int]
        version: str
        def __init__(self, version: _Optional[str] = ...) -> None: ...
    class Client(_message.Message):
        __slots__ = ("name", "version")
        NAME_FIELD_NUMBER: _ClassVar[int]
        VERSION_FIELD_NUMBER: _ClassVar[int]
        name: str
        version: str
        def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    server: EventSource.Server
    client: EventSource.Client
    def __init__(self, server: _Optional[_Union[EventSource.Server, _Mapping]] = ..., client: _Optional[_Union[EventSource.Client, _Mapping]] = ...) -> None: ...

class EventParameters(_message.Message):
    __slots__ = ("version", "legacy_metadata", "private_metadata", "billing_metadata", "metadata")
    class LegacyMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEGACY_METADATA_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    BILLING_METADATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    version: int
    legacy_metadata: _containers.ScalarMap[str, int]
    private_metadata: _struct_pb2.Struct
    billing_metadata: EventBillingMetadata
    metadata: _containers.ScalarMap[str, float]
    def __init__(self, version: _Optional[int] = ..., legacy_metadata: _Optional[_Mapping[str, int]] = ..., private_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., billing_metadata: _Optional[_Union[EventBillingMetadata, _Mapping]] = ..., metadata: _Optional[_Mapping[str, float]] = ...) -> None: ...

class EventBillingMetadata(_message.Message):
    __slots__ = ("product", "category")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    product: str
    category: str
    def __init__(self, product: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class EventUser(_message.Message):
    __slots__ = ("user_id", "anonymous_user_id", "sams_external_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_USER_ID_FIELD_NUMBER: _ClassVar[int]
    SAMS_EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    anonymous_user_id: str
    sams_external_id: str
    def __init__(self, user_id: _Optional[int] = ..., anonymous_user_id: _Optional[str] = ..., sams_external_id: _Optional[str] = ...) -> None: ...

class EventFeatureFlags(_message.Message):
    __slots__ = ("flags",)
    class FlagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.ScalarMap[str, str]
    def __init__(self, flags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EventMarketingTracking(_message.Message):
    __slots__ = ("url", "first_source_url", "cohort_id", "referrer", "last_source_url", "device_session_id", "session_referrer", "session_first_url")
    URL_FIELD_NUMBER: _ClassVar[int]
    FIRST_SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    LAST_SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_REFERRER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIRST_URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    first_source_url: str
    cohort_id: str
    referrer: str
    last_source_url: str
    device_session_id: str
    session_referrer: str
    session_first_url: str
    def __init__(self, url: _Optional[str] = ..., first_source_url: _Optional[str] = ..., cohort_id: _Optional[str] = ..., referrer: _Optional[str] = ..., last_source_url: _Optional[str] = ..., device_session_id: _Optional[str] = ..., session_referrer: _Optional[str] = ..., session_first_url: _Optional[str] = ...) -> None: ...

class EventInteraction(_message.Message):
    __slots__ = ("trace_id", "interaction_id", "geolocation")
    class Geolocation(_message.Message):
        __slots__ = ("country_code",)
        COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
        country_code: str
        def __init__(self, country_code: _Optional[str] = ...) -> None: ...
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    INTERACTION_ID_FIELD_NUMBER: _ClassVar[int]
    GEOLOCATION_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    interaction_id: str
    geolocation: EventInteraction.Geolocation
    def __init__(self, trace_id: _Optional[str] = ..., interaction_id: _Optional[str] = ..., geolocation: _Optional[_Union[EventInteraction.Geolocation, _Mapping]] = ...) -> None: ...
