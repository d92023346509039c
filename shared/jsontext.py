"""JSON text to Python values without silent loss: integers beyond 64 bits are never turned into floats.

orjson (the fast path) parses an integer outside the 64-bit range as a float. A body whose bytes hold a
run of 19 or more digits (a cheap test) is parsed again with the standard library, which keeps every
integer exact; such integers are then refused where they would be stored (orjson cannot write them).
"""

from __future__ import annotations

import json
import re

import orjson

# 19+ digits not part of a fraction or exponent: the only integers orjson may turn into floats.
_LONG_INT = re.compile(rb"(?<![0-9.eE])-?[0-9]{19,}(?![0-9.eE])")


class JSONTextError(ValueError):
    """Not JSON, or a number JSON cannot carry (NaN, Infinity, integers of thousands of digits)."""


def _no_constants(name: str) -> float:
    raise JSONTextError(f"{name} is not a JSON number")


def loads(raw: bytes) -> object:
    """Parse JSON; integers keep their exact value whatever their size (one parse, never two at once)."""
    if _LONG_INT.search(raw):
        try:
            return json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:  # includes Python's limit on very long integers
            raise JSONTextError(str(exc)) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONTextError(str(exc)) from None
