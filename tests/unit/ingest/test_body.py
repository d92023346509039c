"""Body reading: content negotiation and size caps enforced while inflating."""

from __future__ import annotations

import gzip
import io

import pytest

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from shared.ingest.body import CONTENT_TYPES, JSON, PROTOBUF, answer_format, check_headers, read_body


@pytest.mark.parametrize(("ctype", "enc", "expected"), [
    ("application/json", None, ("json", "identity")),
    ("Application/JSON; charset=utf-8", "GZIP", ("json", "gzip")),
    ("application/json", "identity", ("json", "identity")),
    ("application/x-protobuf", "gzip", ("protobuf", "gzip")),
    ("application/protobuf", None, ("protobuf", "identity")),
    ("application/proto", None, ("protobuf", "identity")),  # Connect's unary content type
    ("application/x-protobuffer", None, ("protobuf", "identity")),
])
def test_headers_accepted(ctype, enc, expected):
    assert check_headers(ctype, enc) == expected


@pytest.mark.parametrize(("ctype", "enc"), [(None, None), ("text/json", None), ("application/json", "deflate"),
                                                ("application/grpc", None), ("application/x-protobuf", "br")])
def test_headers_refused(ctype, enc):
    with pytest.raises(UnsupportedMediaType) as refused:
        check_headers(ctype, enc)
    if refused.value.code == "unsupported_content_type":  # the answer names every type it would take
        assert all(t in refused.value.message for t in CONTENT_TYPES)


@pytest.mark.parametrize(("accept", "content_type", "answer"), [
    (None, "application/x-protobuf", PROTOBUF), (None, "application/proto", PROTOBUF),  # the request's own
    (None, "application/json", JSON), ("*/*", "application/x-protobuf", PROTOBUF), ("*/*", "application/json", JSON),
    ("application/json", "application/x-protobuf", JSON), ("application/x-protobuf", "application/json", PROTOBUF),
    ("text/html, application/x-protobuf;q=0.9", "application/json", PROTOBUF),
    ("application/grpc", "application/protobuf", PROTOBUF), (None, "text/plain", JSON), (None, None, JSON),
])
def test_the_answer_is_what_accept_names_else_the_request_s_encoding(accept, content_type, answer):
    assert answer_format(accept, content_type) == answer


def read(data: bytes, encoding: str = "identity", length: int | None = None, wire: int = 1000, inflated: int = 1000):
    return read_body(io.BytesIO(data), length, encoding, max_wire=wire, max_inflated=inflated)


def test_plain_and_gzip_roundtrip():
    assert read(b'{"a": 1}') == b'{"a": 1}'
    assert read(gzip.compress(b'{"a": 1}'), "gzip") == b'{"a": 1}'


def test_caps():
    with pytest.raises(PayloadTooLarge):
        read(b"x", length=2000)
    with pytest.raises(PayloadTooLarge):
        read(b"x" * 1001)
    assert read(b"x" * 1000) == b"x" * 1000


def test_gzip_bomb_stops_at_cap():
    bomb = gzip.compress(b"0" * 100_000_000)
    with pytest.raises(PayloadTooLarge, match="decompressed"):
        read(bomb, "gzip", wire=len(bomb), inflated=10_000)


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"abc")[:-4], gzip.compress(b"a") + b"tail"])
def test_bad_gzip(data):
    with pytest.raises(BadRequest):
        read(data, "gzip")


def test_slow_body_times_out_but_complete_body_is_read():
    from shared.errors import RequestTimeout

    class Slow(io.BytesIO):
        def read(self, size=-1):
            import time

            time.sleep(0.05)
            return super().read(4)

    data = b'{"a": 123456789}'
    assert read_body(Slow(data), len(data), "identity", max_wire=1000, max_inflated=1000, timeout_s=5) == data
    with pytest.raises(RequestTimeout):
        read_body(Slow(data), len(data), "identity", max_wire=1000, max_inflated=1000, timeout_s=0.1)
