"""The event rules of `schema.EventSchema`, compiled by hand into plain checks for the hot path.

`EventSchema` (marshmallow) stays the definition and explains refusals; this module decides, several
times faster. tests/unit/ingest/test_checks.py holds the two to the same verdict on generated events.
"""

from __future__ import annotations

import math
from datetime import datetime

from shared.event import ID_MAX, INT32, INT64, INT_TEXT, NAME_MAX, NAME_RULE, STR_MAX, VERSION_MAX, leaf_names
from shared.timestamps import parse_rfc3339

_name_match = NAME_RULE.match
_isfinite = math.isfinite


class Invalid(ValueError):
    """The event breaks a rule."""


def _strings(obj: object, keys: frozenset, where: str) -> None:
    """obj is None or an object whose listed keys hold None or short strings."""
    if obj is None:
        return
    if type(obj) is not dict:
        raise Invalid(f"{where}: not an object")
    for key, value in obj.items():
        if key in keys and value is not None and (type(value) is not str or len(value) > STR_MAX):
            raise Invalid(f"{where}.{key}: not a string of at most {STR_MAX} characters")


def _int(value: object, low: int, high: int, strings: bool, where: str) -> None:
    if type(value) is int:
        number = value
    elif strings and type(value) is str and INT_TEXT.match(value):
        number = int(value)
    else:
        raise Invalid(f"{where}: not an integer")
    if not low <= number <= high:
        raise Invalid(f"{where}: integer out of range")


def _dict_or_none(value: object, where: str) -> dict | None:
    if value is not None and type(value) is not dict:
        raise Invalid(f"{where}: not an object")
    return value


# Optional string fields of each object (user.userId is an integer, checked on its own).
CLIENT = leaf_names("source.client")
BILLING = leaf_names("parameters.billingMetadata")
USER = leaf_names("user") - {"userId"}
MARKETING = leaf_names("marketingTracking")
INTERACTION = leaf_names("interaction")
GEOLOCATION = leaf_names("interaction.geolocation")


def _parameters(params: dict) -> None:
    version = params.get("version")
    if version is not None:
        _int(version, *INT32, False, "parameters.version")
    metadata = _dict_or_none(params.get("metadata"), "parameters.metadata")
    if metadata:
        for value in metadata.values():
            kind = type(value)
            if kind is not int and (kind is not float or not _isfinite(value)):
                raise Invalid("parameters.metadata: values must be finite numbers")
    legacy = _dict_or_none(params.get("legacyMetadata"), "parameters.legacyMetadata")
    if legacy:
        for value in legacy.values():
            _int(value, *INT64, True, "parameters.legacyMetadata")
    _dict_or_none(params.get("privateMetadata"), "parameters.privateMetadata")
    _strings(params.get("billingMetadata"), BILLING, "parameters.billingMetadata")


def _name(value: object, key: str) -> None:
    if type(value) is not str or len(value) > NAME_MAX or not _name_match(value):
        raise Invalid(f"{key}: must match {NAME_RULE.pattern} and be at most {NAME_MAX} characters")


def check(event: dict) -> datetime:
    """Return the event's timestamp, or raise Invalid."""
    get = event.get
    event_id = get("id")
    if type(event_id) is not str or not 0 < len(event_id) <= ID_MAX:
        raise Invalid(f"id: a string of 1 to {ID_MAX} characters is required")
    try:
        timestamp = parse_rfc3339(get("timestamp"))
    except ValueError as exc:
        raise Invalid(f"timestamp: {exc}") from None
    _name(get("feature"), "feature")
    _name(get("action"), "action")
    source = get("source")
    if type(source) is not dict or type(server := source.get("server")) is not dict:
        raise Invalid("source.server: required object")
    version = server.get("version")
    if type(version) is not str or not 0 < len(version) <= VERSION_MAX:
        raise Invalid(f"source.server.version: a string of 1 to {VERSION_MAX} characters is required")
    _strings(source.get("client"), CLIENT, "source.client")
    params = _dict_or_none(get("parameters"), "parameters")
    if params:
        _parameters(params)
    user = _dict_or_none(get("user"), "user")
    if user:
        if user.get("userId") is not None:
            _int(user["userId"], *INT64, True, "user.userId")
        _strings(user, USER, "user")
    holder = _dict_or_none(get("featureFlags"), "featureFlags")
    if holder and (flags := _dict_or_none(holder.get("flags"), "featureFlags.flags")):
        for value in flags.values():
            if type(value) is not str:
                raise Invalid("featureFlags.flags: values must be strings")
    _strings(get("marketingTracking"), MARKETING, "marketingTracking")
    interaction = get("interaction")
    _strings(interaction, INTERACTION, "interaction")
    if interaction:
        _strings(interaction.get("geolocation"), GEOLOCATION, "interaction.geolocation")
    return timestamp
