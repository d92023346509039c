"""Reading the Pub/Sub message out of a pushed CloudEvent."""

from __future__ import annotations

import base64

import pytest

from shared.envelope import PoisonMessage
from shared.sink.push import message_id, pushed_message


def test_pushed_message_both_spellings():
    data = base64.b64encode(b"abc").decode()
    a = pushed_message({"message": {"data": data, "messageId": "1", "publishTime": "t", "attributes": {"k": "v"}}})
    b = pushed_message({"message": {"data": data, "message_id": "1", "publish_time": "t", "attributes": {"k": "v"}}})
    assert a == b and a.data == b"abc" and a.attributes == {"k": "v"}


@pytest.mark.parametrize("data", [None, {}, {"message": "x"}, {"message": {"data": "!!", "messageId": "1"}},
                                  {"message": {"data": "YQ=="}}])
def test_pushed_message_poison(data):
    with pytest.raises(PoisonMessage):
        pushed_message(data)


@pytest.mark.parametrize(("data", "expected"), [
    ({"message": {"messageId": "7"}}, "7"), ({"message": {"message_id": 8}}, "8"), ({"message": None}, None),
    (None, None), ({"message": {}}, None)])
def test_message_id_either_spelling_or_none(data, expected):
    assert message_id(data) == expected
