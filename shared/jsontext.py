"""JSON text to Python values without silent loss: integers beyond 64 bits are never turned into floats.

orjson (the fast path) parses an integer outside the 64-bit range as a float. A body whose bytes hold a
run of 19 or more digits (a cheap test) is parsed again with the standard library, which keeps every
integer exact; such integers are then refused where they would be stored (orjson cannot write them).
"""

from __future__ import annotations

import json

import orjson

# A run of 19+ digits: the only integers orjson may turn into floats have one (a cheap over-approximation:
# digits in strings or fractions also match, and are then merely parsed by the slower, exact parser).
_LONG_RUN = b"9" * 19
_TO_MARKS = bytes(57 if 48 <= b <= 57 else 32 for b in range(256))  # digits -> "9", the rest -> " "


def _scan(raw: bytes) -> bool:
    """Whether raw holds 19 consecutive ASCII digits (C-speed: translate, then a substring search)."""
    return _LONG_RUN in raw.translate(_TO_MARKS)



class JSONTextError(ValueError):
    """Not JSON, or a number JSON cannot carry (NaN, Infinity, integers of thousands of digits)."""


def _no_constants(name: str) -> float:
    raise JSONTextError(f"{name} is not a JSON number")


def _lone_surrogate(value: object) -> bool:
    """Whether a string anywhere in a parsed value (object keys too) holds a lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return isinstance(value, list) and any(_lone_surrogate(item) for item in value)


def loads(raw: bytes) -> object:
    """Parse JSON; integers keep their exact value whatever their size (one parse, never two at once).

    Both parsers refuse what the other does: the standard library's accepts a lone surrogate escape ("\\ud800"),
    which orjson (and UTF-8, so every later step) refuses, so it is refused here too.
    """
    if _scan(raw):
        try:
            value = json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:  # includes Python's limit on very long integers
            raise JSONTextError(str(exc)) from None
        if b"\\u" in raw and _lone_surrogate(value):
            raise JSONTextError("a string holds a lone surrogate escape (\\ud800 to \\udfff), which UTF-8 cannot hold")
        return value
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONTextError(str(exc)) from None
