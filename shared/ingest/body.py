"""Reading a request body safely: content type and encoding, size caps checked while inflating."""

from __future__ import annotations

import time
from typing import BinaryIO

from isal import isal_zlib

from shared.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

CHUNK = 64 * 1024


JSON, PROTOBUF = "json", "protobuf"
# application/x-protobuf: OTLP/HTTP's; application/proto: what Connect clients send for a unary call
# (https://connectrpc.com/docs/protocol); application/protobuf and application/x-protobuffer: de-facto aliases.
CONTENT_TYPES = {"application/json": JSON, "application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF,
                 "application/proto": PROTOBUF, "application/x-protobuffer": PROTOBUF}
PROTOBUF_TYPE = "application/x-protobuf"


def media_type(header: str | None) -> str:
    """A Content-Type's or Accept part's media type, lower case, without parameters."""
    return (header or "").split(";", 1)[0].strip().lower()


def body_format(content_type: str | None) -> str:
    """JSON or PROTOBUF from the Content-Type, or raise 415 naming every accepted type."""
    mime = media_type(content_type)
    if mime not in CONTENT_TYPES:
        raise UnsupportedMediaType("unsupported_content_type",
                                   f"Content-Type must be one of {', '.join(CONTENT_TYPES)}")
    return CONTENT_TYPES[mime]


def answer_format(accept: str | None, content_type: str | None) -> str:
    """The answer's encoding: what Accept names (protobuf when it names a protobuf type, else JSON when it names
    JSON); when it names neither (absent, */*, anything else), the request's own ("The server MUST use the same
    Content-Type in the response as it received in the request", OTLP/HTTP), JSON for a request of neither."""
    named = {CONTENT_TYPES.get(media_type(part)) for part in (accept or "").split(",")}
    if PROTOBUF in named:
        return PROTOBUF
    if JSON in named:
        return JSON
    return CONTENT_TYPES.get(media_type(content_type), JSON)


def check_headers(content_type: str | None, content_encoding: str | None) -> tuple[str, str]:
    """Return the body's format (JSON or PROTOBUF) and encoding ("gzip" or "identity"), or raise 415."""
    fmt = body_format(content_type)
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("gzip", "identity"):
        raise UnsupportedMediaType("unsupported_encoding", "Content-Encoding must be gzip or absent")
    return fmt, encoding


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge("body_too_large", f"{what} exceeds {limit} bytes")


def _timed_out(timeout_s: float) -> RequestTimeout:
    return RequestTimeout("body_timeout", f"request body not received within {timeout_s:g}s")


def _cut_or_incomplete(deadline: float, timeout_s: float, detail: str) -> BadRequest | RequestTimeout:
    """A body that stopped short: cut at its deadline (by the watchdog) is 408, anything else 400."""
    if time.monotonic() >= deadline - 0.05:
        return _timed_out(timeout_s)
    return BadRequest("incomplete_body", detail)


def body_deadline(content_length: int | None, timeout_s: float, min_rate: int, grace_s: float) -> float:
    """Seconds a body may take: a grace plus its length at the minimum rate, never more than timeout_s.

    A minimum rate keeps a trickled body from holding a server thread for the whole timeout.
    """
    if content_length is None:
        return timeout_s
    return min(timeout_s, grace_s + content_length / min_rate)


def read_body(
    stream: BinaryIO, content_length: int | None, encoding: str, *, max_wire: int, max_inflated: int,
    timeout_s: float = 10.0,
) -> bytes:
    """Read at most max_wire bytes off the wire within timeout_s and inflate to at most max_inflated bytes."""
    if content_length is not None and content_length > max_wire:
        raise _too_large(max_wire, "request body")
    deadline = time.monotonic() + timeout_s
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS) if encoding == "gzip" else None
    out = bytearray()
    wire = 0
    while content_length is None or wire < content_length:
        if time.monotonic() > deadline:  # checked before waiting for more, never after the body is complete
            raise _timed_out(timeout_s)
        try:
            chunk = stream.read(CHUNK)
        except Exception as exc:  # the server's reader: a cut, aborted or badly framed (chunked) body
            raise _cut_or_incomplete(deadline, timeout_s, f"body could not be read ({type(exc).__name__})") from None
        if not chunk:
            break
        wire += len(chunk)
        if wire > max_wire:
            raise _too_large(max_wire, "request body")
        if inflater is None:
            out += chunk
        else:
            _inflate(inflater, chunk, out, max_inflated)
        if len(out) > max_inflated:
            raise _too_large(max_inflated, "decompressed body")
    if content_length is not None and wire < content_length:
        raise _cut_or_incomplete(deadline, timeout_s, f"body ended after {wire} of {content_length} bytes")
    if inflater is not None:
        if not inflater.eof:
            raise BadRequest("bad_gzip", "gzip body is truncated")
        if inflater.unused_data:
            raise BadRequest("bad_gzip", "trailing data after the gzip stream")
    return bytes(out)


def _inflate(inflater: object, chunk: bytes, out: bytearray, cap: int) -> None:
    """Inflate chunk into out without ever producing more than cap + 1 bytes in total."""
    data = chunk
    while data:
        try:
            out += inflater.decompress(data, cap + 1 - len(out))
        except isal_zlib.error as exc:
            raise BadRequest("bad_gzip", f"body is not valid gzip: {exc}") from None
        if len(out) > cap:
            raise _too_large(cap, "decompressed body")
        if inflater.eof:
            if inflater.unused_data:
                raise BadRequest("bad_gzip", "trailing data after the gzip stream")
            return
        data = inflater.unconsumed_tail
