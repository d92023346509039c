"""Hypothesis strategies of protobuf messages built from their own descriptors (no hand-written list of fields):
every field of every type may be set or left out, with the corners proto3 allows: int64 and int32 at both ends,
NaN and the infinities, strings from every unicode plane (empty and huge), zero values that carry presence,
Structs of any JSON-like value (NaN and infinities too), maps and repeated fields."""

from __future__ import annotations

import math

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

T = FieldDescriptor
INT64 = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1]) | st.integers(-(2**63), 2**63 - 1)
INT32 = st.sampled_from([0, 2**31 - 1, -(2**31)]) | st.integers(-(2**31), 2**31 - 1)
DOUBLES = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7e308]) | st.floats()
# Any code point but surrogates (a protobuf string is UTF-8), so every plane; and a few strings at and past the
# length limits (shared/event.py: 4096 for named strings, MAX_STRING_CHARS 16384), in 1- to 4-byte characters.
HUGE = st.sampled_from(["x" * 4096, "é" * 4097, "\U0001d11e" * 2000, "\u4e16" * 16_385, "z" * 16_384])
_SHORT = st.text(st.characters(codec="utf-8"), max_size=12)
TEXTS = st.one_of(_SHORT, _SHORT, _SHORT, _SHORT, st.just(""), HUGE)  # one string in six huge
JSON_LEAVES = st.none() | st.booleans() | DOUBLES | st.text(st.characters(codec="utf-8"), max_size=8)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=12)
SCALARS = {
    T.TYPE_INT64: INT64, T.TYPE_SINT64: INT64, T.TYPE_SFIXED64: INT64,
    T.TYPE_INT32: INT32, T.TYPE_SINT32: INT32, T.TYPE_SFIXED32: INT32,
    T.TYPE_UINT64: st.integers(0, 2**64 - 1), T.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    T.TYPE_UINT32: st.integers(0, 2**32 - 1), T.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    T.TYPE_DOUBLE: DOUBLES, T.TYPE_FLOAT: st.floats(width=32) | st.sampled_from([math.nan, math.inf]),
    T.TYPE_BOOL: st.booleans(), T.TYPE_STRING: TEXTS, T.TYPE_BYTES: st.binary(max_size=16),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == T.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    return SCALARS[field.type]


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of the descriptor's type, any subset of its fields set (well-known types as their values)."""
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Struct":
        message.update(draw(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4)))
        return message
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = draw(INT64), draw(st.integers(0, 999_999_999) | INT32)
        return message
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if _is_map(field):
            entry = field.message_type.fields_by_name
            key_field, value_field = entry["key"], entry["value"]
            target = getattr(message, field.name)
            for key in draw(st.lists(_scalar(key_field), max_size=3)):
                if value_field.message_type is not None:
                    target[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
                else:
                    target[key] = draw(_scalar(value_field))
        elif field.message_type is not None:
            if depth < 4:
                value = draw(messages(field.message_type, depth + 1))
                target = getattr(message, field.name)
                if field.is_repeated:
                    target.append(value)
                else:
                    target.CopyFrom(value)
                    target.SetInParent()  # present even when all its fields are unset
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message
