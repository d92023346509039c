"""The compiled checks agree with the marshmallow schema on every generated event."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from shared.ingest.checks import Invalid, check
from shared.ingest.schema import EVENT_SCHEMA

ANY = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
                   lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                   max_leaves=6)
STR = st.one_of(st.none(), st.text(max_size=10), st.just("x" * 4097), ANY)
NAME = st.one_of(st.sampled_from(["cody.completion", "a-b.c", "Cody", "cody1", "x", "a\n", "a" * 65]), ANY)
INT64 = st.one_of(st.none(), st.integers(-(2**64), 2**64), st.sampled_from(["12", "-3", "1.5", "", "9" * 20]), ANY)
TIMESTAMP = st.one_of(st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+02:00",
                                       "2026-01-01T00:00:00", "nope", ""]), ANY)


BASE = {
    "id": "0190c3d2-7a1e-7b55-9d2c-3f1a2b4c5d6e", "timestamp": "2026-01-01T00:00:00Z", "feature": "cody.chat",
    "action": "executed", "source": {"server": {"version": "5.1"}, "client": {"name": "WEB", "version": "1"}},
    "parameters": {"version": 1, "metadata": {"a": 1, "b": 2.5}, "legacyMetadata": {"c": "3"},
                   "privateMetadata": {"q": [1]}, "billingMetadata": {"product": "CODY", "category": "CORE"}},
    "user": {"userId": 7, "anonymousUserId": "u", "samsExternalId": "s"},
    "featureFlags": {"flags": {"f": "true"}},
    "marketingTracking": {"url": "https://x", "cohortId": "c"},
    "interaction": {"traceId": "t", "interactionId": "i", "geolocation": {"countryCode": "US"}},
}
PATHS = [("id",), ("timestamp",), ("feature",), ("action",), ("source",), ("source", "server"),
         ("source", "server", "version"), ("source", "client"), ("source", "client", "name"), ("parameters",),
         ("parameters", "version"), ("parameters", "metadata"), ("parameters", "metadata", "a"),
         ("parameters", "legacyMetadata"), ("parameters", "legacyMetadata", "c"), ("parameters", "privateMetadata"),
         ("parameters", "billingMetadata"), ("parameters", "billingMetadata", "product"), ("user",),
         ("user", "userId"), ("user", "anonymousUserId"), ("featureFlags",), ("featureFlags", "flags"),
         ("featureFlags", "flags", "f"), ("marketingTracking",), ("marketingTracking", "referrer"), ("interaction",),
         ("interaction", "geolocation"), ("interaction", "geolocation", "countryCode"), ("unknown",)]
VALUES = st.one_of(STR, NAME, INT64, TIMESTAMP, st.just({}), st.just(None), st.integers(-(2**40), 2**40), st.floats())
DELETE = object()


def mutate(changes: list) -> dict:
    """BASE with each (path, value) set, or the key removed for DELETE."""
    event = copy.deepcopy(BASE)
    for path, value in changes:
        target = event
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                break
            target = target[key]
        else:
            if value is DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
    return event


EVENTS = st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(VALUES, st.just(DELETE))), max_size=3).map(mutate)


def schema_accepts(event: dict) -> bool:
    try:
        EVENT_SCHEMA.load(event)
    except ValidationError:
        return False
    return True


def checks_accept(event: dict) -> bool:
    try:
        check(event)
    except Invalid:
        return False
    return True


@settings(max_examples=3000, deadline=None)
@given(EVENTS)
def test_same_verdict_as_schema(event):
    assert checks_accept(event) == schema_accepts(event), event


@pytest.mark.parametrize("event", [
    {"id": "a", "timestamp": "2026-01-01T00:00:00Z", "feature": "a.b", "action": "cd",
     "source": {"server": {"version": "1"}}},
    {"id": "a", "timestamp": "2026-01-01T00:00:00Z", "feature": "a.b", "action": "cd",
     "source": {"server": {"version": "1"}, "client": None}, "parameters": {"metadata": {"x": 1, "y": 2.5},
                                                                           "legacyMetadata": {"z": "7"}},
     "user": {"userId": "123"}},
])
def test_valid_examples_agree(event):
    assert checks_accept(event) and schema_accepts(event)
