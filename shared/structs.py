"""google.protobuf.Struct values as the gateway stores them: JSON, with NaN and the infinities as null.

JSON has no number for NaN or ±Infinity, and protobuf's own JSON printer refuses them (they "would parse as
string_value"). A Struct sent as protobuf may hold them: ingest turns each into null (and says so in a warning,
`non_finite_nulled`); the sink does the same for a message published before that rule, so neither step fails on one.
"""

from __future__ import annotations

from math import isfinite

from google.protobuf.struct_pb2 import ListValue, Struct, Value


def null_non_finite(container: Struct | ListValue) -> int:
    """Set every non-finite number inside a Struct or ListValue to null, in place; how many there were."""
    values = container.fields.values() if isinstance(container, Struct) else container.values
    nulled = 0
    for value in values:
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            if not isfinite(value.number_value):
                value.null_value = 0
                nulled += 1
        elif kind == "struct_value":
            nulled += null_non_finite(value.struct_value)
        elif kind == "list_value":
            nulled += null_non_finite(value.list_value)
    return nulled


def value_json(value: Value) -> object:
    """A Value as a JSON value (unset and non-finite: None), as protobuf's JSON mapping writes it otherwise."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return number if isfinite(number) else None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_json(value.struct_value)
    if kind == "list_value":
        return [value_json(item) for item in value.list_value.values]
    return None


def struct_json(struct: Struct) -> dict:
    """A Struct as a JSON object (see value_json)."""
    return {key: value_json(value) for key, value in struct.fields.items()}
