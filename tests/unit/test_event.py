"""The event's declared fields (shared/event.py): the ingest schema declares exactly that tree."""

from __future__ import annotations

from shared.event import FIELDS, leaf_names, unknown_fields
from shared.ingest.schema import known_fields


def test_schema_declares_exactly_the_shared_field_tree():
    assert known_fields() == FIELDS


def test_leaf_names():
    assert leaf_names("source.client") == {"name", "version"}
    assert leaf_names("interaction") == {"traceId", "interactionId"}  # geolocation is an object
    assert leaf_names("id") == frozenset()


def test_unknown_fields_nested():
    event = {"id": "x", "source": {"server": {"version": "1", "new": 1}, "other": 2}, "top": [1],
             "parameters": {"metadata": {"anything": 1}}}
    assert unknown_fields(event) == {"source": {"server": {"new": 1}, "other": 2}, "top": [1]}
