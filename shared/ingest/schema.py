"""The telemetry v2 event as a marshmallow schema (proto3 JSON mapping): the definition of a valid event.

The hot path decides with `checks` (compiled from these rules); this schema explains refusals in its
own words, and a property test holds the two to the same verdict.
"""

from __future__ import annotations

from datetime import datetime

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from shared.event import ID_MAX, INT32, INT64, INT_TEXT, NAME_MAX, NAME_RULE, STR_MAX, VERSION_MAX
from shared.timestamps import parse_rfc3339


def _opt_str() -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=STR_MAX))


class Timestamp(fields.Field):
    """RFC 3339 timestamp with a zone (up to nanosecond digits; stored to microseconds)."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> datetime:
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Number(fields.Field):
    """A JSON number (not a boolean, not a string), finite."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> float:
        if type(value) not in (int, float) or value != value or value in (float("inf"), float("-inf")):
            raise ValidationError("must be a finite number")
        return float(value)


class Int(fields.Field):
    """An integer in [low, high]: a JSON integer, or (int64 in proto3 JSON) a decimal string if allowed."""

    def __init__(self, low: int, high: int, *, strings: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.low, self.high, self.strings = low, high, strings

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> int:
        if not (type(value) is int or (self.strings and type(value) is str and INT_TEXT.match(value))):
            raise ValidationError("must be an integer")
        number = int(value)
        if not self.low <= number <= self.high:
            raise ValidationError("integer out of range")
        return number


class _Open(Schema):
    """Unknown fields are kept (the sink stores them in `extra`)."""

    class Meta:
        unknown = INCLUDE


class ServerSchema(_Open):
    version = fields.String(required=True, validate=validate.Length(min=1, max=VERSION_MAX))


class ClientSchema(_Open):
    name = _opt_str()
    version = _opt_str()


class SourceSchema(_Open):
    server = fields.Nested(ServerSchema, required=True)
    client = fields.Nested(ClientSchema, allow_none=True)


class BillingSchema(_Open):
    product = _opt_str()
    category = _opt_str()


class ParametersSchema(_Open):
    version = Int(*INT32, strings=False, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=Number(), allow_none=True)
    legacyMetadata = fields.Dict(keys=fields.String(), values=Int(*INT64, strings=True), allow_none=True)
    privateMetadata = fields.Dict(allow_none=True)
    billingMetadata = fields.Nested(BillingSchema, allow_none=True)


class UserSchema(_Open):
    userId = Int(*INT64, strings=True, allow_none=True)
    anonymousUserId = _opt_str()
    samsExternalId = _opt_str()


class FeatureFlagsSchema(_Open):
    flags = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)


class MarketingSchema(_Open):
    url = _opt_str()
    firstSourceUrl = _opt_str()
    cohortId = _opt_str()
    referrer = _opt_str()
    lastSourceUrl = _opt_str()
    deviceSessionId = _opt_str()
    sessionReferrer = _opt_str()
    sessionFirstUrl = _opt_str()


class GeolocationSchema(_Open):
    countryCode = _opt_str()


class InteractionSchema(_Open):
    traceId = _opt_str()
    interactionId = _opt_str()
    geolocation = fields.Nested(GeolocationSchema, allow_none=True)


class EventSchema(_Open):
    """A telemetry v2 event."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=ID_MAX))
    timestamp = Timestamp(required=True)
    feature = fields.String(required=True, validate=[validate.Length(max=NAME_MAX), validate.Regexp(NAME_RULE)])
    action = fields.String(required=True, validate=[validate.Length(max=NAME_MAX), validate.Regexp(NAME_RULE)])
    source = fields.Nested(SourceSchema, required=True)
    parameters = fields.Nested(ParametersSchema, allow_none=True)
    user = fields.Nested(UserSchema, allow_none=True)
    featureFlags = fields.Nested(FeatureFlagsSchema, allow_none=True)
    marketingTracking = fields.Nested(MarketingSchema, allow_none=True)
    interaction = fields.Nested(InteractionSchema, allow_none=True)


EVENT_SCHEMA = EventSchema()


def known_fields(schema: Schema = EVENT_SCHEMA) -> dict[str, dict | None]:
    """The declared field tree: name -> sub-tree for nested objects, None for leaves."""
    tree: dict[str, dict | None] = {}
    for name, fld in schema.fields.items():
        tree[name] = known_fields(fld.schema) if isinstance(fld, fields.Nested) else None
    return tree




def first_error(messages: dict | list | str, path: str = "") -> str:
    """The first of marshmallow's error messages, as `dotted.path: message`."""
    if isinstance(messages, dict):
        key, sub = next(iter(messages.items()))
        return first_error(sub, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        return first_error(messages[0], path)
    return f"{path}: {messages}"


def explain(event: dict, fallback: str) -> str:
    """Why the event is invalid, in the schema's words (the slow path runs only for refused events)."""
    try:
        EVENT_SCHEMA.load(event)
    except ValidationError as exc:
        return first_error(exc.messages)
    return fallback
