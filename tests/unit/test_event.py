"""The event's declared fields (shared/event.py): the ingest schema declares exactly that tree."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.event import FIELDS, has_unknown_fields, leaf_names, unknown_fields
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


def _depth(tree: dict | None) -> int:
    return 0 if not tree else 1 + max(_depth(sub) for sub in tree.values())


def test_objects_nest_at_most_two_levels_below_the_event():
    """has_unknown_fields looks two levels down: a deeper declared object needs it to look further."""
    assert _depth(FIELDS) == 3  # the event, source, source.server (its leaves at the fourth)


leaf = st.one_of(st.none(), st.integers(), st.text(max_size=3))
declared = st.sampled_from(["id", "source", "server", "client", "version", "name", "parameters", "metadata",
                            "billingMetadata", "product", "user", "userId", "interaction", "geolocation",
                            "countryCode", "featureFlags", "flags", "marketingTracking", "url"])
objects = st.recursive(leaf, lambda inner: st.dictionaries(declared | st.text(max_size=3), inner, max_size=5),
                       max_leaves=20)


@given(st.dictionaries(declared | st.text(max_size=3), objects, max_size=6))
def test_has_unknown_fields_agrees_with_unknown_fields(event):
    assert has_unknown_fields(event) is bool(unknown_fields(event))
