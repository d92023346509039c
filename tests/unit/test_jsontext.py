"""JSON text without silent loss: integers of any size stay exact; NaN and Infinity are not JSON."""

from __future__ import annotations

import pytest

from shared.jsontext import JSONTextError, loads


@pytest.mark.parametrize("number", [2**70, -(2**63) - 1, 2**64, 10**30])
def test_integers_beyond_64_bits_stay_exact(number):
    doc = loads(f'{{"a": {number}, "s": "x"}}'.encode())
    assert doc == {"a": number, "s": "x"} and type(doc["a"]) is int


def test_ordinary_bodies_take_the_fast_path_unchanged():
    assert loads(b'{"a": 9223372036854775807, "b": 1.5e300, "c": "12345678901234567890"}') == {
        "a": 9223372036854775807, "b": 1.5e300, "c": "12345678901234567890"}


@pytest.mark.parametrize("raw", [b"{", b'{"a": NaN, "n": 12345678901234567890123}', b"1e400",
                                 b'{"a": Infinity}', b"9" * 5000])
def test_not_json_is_refused(raw):
    with pytest.raises(JSONTextError):
        loads(raw)


@pytest.mark.parametrize("text", [rb'{"a": "\ud800"}', rb'{"\udfff": 1}', rb'["x\ud83d"]'])
@pytest.mark.parametrize("digits", [b"", b', "n": 12345678901234567890'], ids=["orjson", "exact"])
def test_a_lone_surrogate_escape_is_refused_by_both_parsers(text, digits):
    raw = text[:-1] + (digits if text.startswith(b"{") else b"") + text[-1:]
    with pytest.raises(JSONTextError):
        loads(raw)


def test_a_surrogate_pair_escape_is_one_character_in_both_parsers():
    for raw in (rb'["\ud83d\ude00"]', rb'["\ud83d\ude00", 12345678901234567890]'):
        assert loads(raw)[0] == "\U0001f600"
