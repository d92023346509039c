"""Struct values as stored: non-finite numbers become null, in place at ingest and when converted in the sink."""

from __future__ import annotations

import math

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from hypothesis import given
from hypothesis import strategies as st

from shared.structs import null_non_finite, struct_json

json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                         max_size=3), max_leaves=10)


def structs(value: dict) -> Struct:
    struct = Struct()
    struct.update(value)
    return struct


def non_finite(value: object) -> int:
    if isinstance(value, float):
        return not math.isfinite(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return sum(non_finite(item) for item in items)


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_nulling_counts_every_non_finite_number_and_leaves_what_protobuf_s_json_printer_writes(value):
    struct = structs(value)
    before = struct_json(struct)
    assert null_non_finite(struct) == non_finite(value)
    assert struct_json(struct) == json_format.MessageToDict(struct) == before  # the same JSON, now printable


def test_an_unset_value_is_null():
    struct = Struct()
    struct.fields["empty"].SetInParent()
    assert struct_json(struct) == {"empty": None} and null_non_finite(struct) == 0
