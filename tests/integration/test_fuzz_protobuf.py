"""Hostile protobuf bodies, in process and over real HTTP, as tests/integration/test_fuzz.py does for JSON.

Bodies: random bytes; RecordEventsBody messages built with the protobuf library, every field of every event
possibly set to a random value (unicode, int64 extremes, NaN and infinities, maps, a Struct of random JSON-like
values) or left out; those bodies mutated on the wire (fields duplicated, swapped or dropped, a length prefix
changed, cut, bits flipped, bytes spliced in). Headers: protobuf and other Content-Types, Content-Encodings,
Accepts. Never a 5xx; errors as google.rpc.Status when Accept asks for protobuf, JSON otherwise; only the batches
answered with successes are published.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.gateway_pb2 import RecordEventsBody
from shared.telemetrygateway_pb2 import Event
from tests.integration.attacks import AUTHORIZATIONS, ENCODINGS, check_answer, drain, json_like, request_parts
from tests.integration.messages import MARKETING, base_event, licensed, varint

pytestmark = pytest.mark.integration
# The JSON fuzz's settings (`make fuzz` raises them), a quarter and a half of them: an example costs about what a
# JSON one does, and `make test` gains ~20 s, not a minute more.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4000")) // 4
HTTP_EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "500")) // 2

INT32, INT64 = st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=20)  # any code point but surrogates, which a protobuf string cannot hold
names = st.sampled_from(["cody.completion", "executed"]) | texts
doubles = st.sampled_from([math.inf, -math.inf, math.nan, 1.7e308, -1.7e308, -0.0, 5e-324]) | st.floats()
# Fields that may hold any value of their type in a valid event (but metadata's NaN and infinities), and those the
# event rules constrain.
CONTENT = {
    "source.client.name": texts, "source.client.version": texts, "parameters.version": INT32,
    "parameters.billing_metadata.product": texts, "parameters.billing_metadata.category": texts,
    "user.user_id": INT64, "user.anonymous_user_id": texts, "user.sams_external_id": texts,
    "interaction.trace_id": texts, "interaction.interaction_id": texts, "interaction.geolocation.country_code": texts,
    **{f"marketing_tracking.{name}": texts for name in MARKETING},
    "parameters.legacy_metadata": st.dictionaries(texts, INT64, max_size=4),
    "parameters.metadata": st.dictionaries(texts, doubles, max_size=4),  # NaN and infinities refused
    "feature_flags.flags": st.dictionaries(texts, texts, max_size=4),
    "parameters.private_metadata": st.dictionaries(texts, json_like(
        st.none() | st.booleans() | doubles | st.integers(-(2**64), 2**64) | texts), max_size=4),
}
RULED = {
    "id": texts, "feature": names, "action": names, "timestamp.seconds": INT64, "timestamp.nanos": INT32,
    "source.server.version": texts,
}
CONTAINERS = {"parameters.legacy_metadata", "parameters.metadata", "feature_flags.flags", "parameters.private_metadata"}


def recent_event() -> Event:
    """A valid event, five minutes old."""
    return base_event(datetime.now(UTC) - timedelta(minutes=5))


def set_fields(event: Event, values: dict) -> Event:
    """The event with each dotted field path set to its value (maps and the Struct updated)."""
    for path, value in values.items():
        *parents, name = path.split(".")
        target = functools.reduce(getattr, parents, event)
        if path in CONTAINERS:
            getattr(target, name).update(value)
        else:
            setattr(target, name, value)
    return event


events = st.one_of(
    st.builds(set_fields, st.builds(recent_event), st.fixed_dictionaries({}, optional=CONTENT)),
    st.builds(set_fields, st.builds(recent_event) | st.builds(Event),
              st.fixed_dictionaries({}, optional={**CONTENT, **RULED})),
)
instances = st.fixed_dictionaries({}, optional={"instanceId": texts, "externalUrl": texts})
valid_metadata = st.builds(licensed, st.just("inst-fuzz") | st.text(min_size=1, max_size=20))
metadatas = st.one_of(  # mostly a licensed instance's, so that batches get through; {} is no metadata
    valid_metadata, valid_metadata, valid_metadata,
    st.fixed_dictionaries({}, optional={"requestId": texts, "identifier": st.one_of(
        st.fixed_dictionaries({"licensedInstance": instances}),
        st.fixed_dictionaries({"unlicensedInstance": instances}),
        st.fixed_dictionaries({"managedService": st.fixed_dictionaries(
            {}, optional={"serviceId": texts, "serviceEnvironment": texts})}))}),
)


def split(raw: bytes) -> list[tuple[int, bytes]]:
    """(tag, payload) of each field of a valid message whose fields are all length-delimited and numbered 1 to
    15 (a RecordEventsBody, an Event)."""
    fields, pos = [], 0
    while pos < len(raw):
        tag, length, shift, pos = raw[pos], 0, 0, pos + 1
        while True:
            byte, pos = raw[pos], pos + 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        fields.append((tag, raw[pos:pos + length]))
        pos += length
    return fields


def join(fields: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([tag]) + varint(len(payload)) + payload for tag, payload in fields)


def nth(items: list, at: float) -> int:
    """The index `at` (0 to 1) of the way along a non-empty list."""
    return min(int(at * len(items)), len(items) - 1)


def duplicate(fields: list, at: float) -> None:
    fields.insert(nth(fields, at), fields[nth(fields, at)])


def swap(fields: list, at: float, to: float) -> None:
    i, j = nth(fields, at), nth(fields, to)
    fields[i], fields[j] = fields[j], fields[i]


def drop(fields: list, at: float) -> None:
    del fields[nth(fields, at)]


def relength(raw: bytes, at: float, length: int, inside: bool) -> bytes:
    """One length prefix replaced: of a top-level field, or (inside) of a field within an event."""
    fields = split(raw)
    if not fields:
        return raw
    k = nth(fields, at)
    tag, payload = fields[k]
    inner = split(payload) if inside and tag == 0x12 else []
    if inner:
        fields[k] = (tag, relength(payload, at, length, False))
        return join(fields)
    return join(fields[:k]) + bytes([tag]) + varint(length) + payload + join(fields[k + 1:])


def truncate(raw: bytes, at: float) -> bytes:
    return raw[:int(at * len(raw))]


def flip(raw: bytes, at: float, bit: int) -> bytes:
    if not raw:
        return raw
    i = nth(raw, at)
    return raw[:i] + bytes([raw[i] ^ 1 << bit]) + raw[i + 1:]


def splice(raw: bytes, at: float, data: bytes) -> bytes:
    i = int(at * len(raw))
    return raw[:i] + data + raw[i:]


fractions = st.floats(0, 1, exclude_max=True)
reframes = st.one_of(st.builds(functools.partial, st.just(duplicate), at=fractions),
                     st.builds(functools.partial, st.just(swap), at=fractions, to=fractions),
                     st.builds(functools.partial, st.just(drop), at=fractions))
relengths = st.builds(functools.partial, st.just(relength), at=fractions, inside=st.booleans(),
                      length=st.integers(0, 2**35) | st.integers(0, 300))
damages = st.one_of(st.builds(functools.partial, st.just(truncate), at=fractions),
                    st.builds(functools.partial, st.just(flip), at=fractions, bit=st.integers(0, 7)),
                    st.builds(functools.partial, st.just(splice), at=fractions, data=st.binary(min_size=1, max_size=8)))


@dataclass
class Body:
    """A body to send: random bytes, or a RecordEventsBody (the license key in its metadata when asked) with its
    fields reframed, then a length prefix changed, then damaged on the wire, as drawn."""

    raw: bytes | None = None
    metadata: dict | None = None
    events: list[Event] = field(default_factory=list)
    key_in_body: bool = False
    reframes: list = field(default_factory=list)
    relength: functools.partial | None = None
    damages: list = field(default_factory=list)

    def encode(self, license_key: str) -> bytes:
        if self.raw is not None:
            return self.raw
        body = RecordEventsBody(events=self.events)
        if self.metadata is not None:
            json_format.ParseDict(self.metadata, body.metadata)
        if self.key_in_body:
            body.metadata.identifier.licensed_instance.license_key = license_key
        raw = body.SerializeToString()
        fields = split(raw)
        for reframe in self.reframes:
            if fields:
                reframe(fields)
        raw = join(fields)
        if self.relength:
            raw = self.relength(raw)
        for damage in self.damages:
            raw = damage(raw)
        return raw


messages = st.builds(Body, metadata=metadatas, events=st.lists(events, max_size=5), key_in_body=st.booleans())
bodies = st.one_of(
    st.builds(Body, raw=st.binary(max_size=300)),
    messages,
    st.builds(Body, metadata=metadatas, events=st.lists(events, max_size=5), key_in_body=st.booleans(),
              reframes=st.lists(reframes, max_size=2), relength=st.none() | relengths,
              damages=st.lists(damages, max_size=2)),
)
# Accept -> whether the answer must be protobuf; None: Accept names neither encoding, so the request's own.
ACCEPTS = {None: None, "application/x-protobuf": True, "application/protobuf": True, "application/json": False,
           "*/*": None, "text/html, application/x-protobuf;q=0.9": True, "application/grpc": None,
           "application/proto": True}
PROTOBUF_TYPES = {"application/x-protobuf", "application/protobuf", "application/proto", "application/x-protobuffer"}
protobuf_types = st.sampled_from(["application/x-protobuf", "application/protobuf", "Application/X-Protobuf",
                                  "application/x-protobuf; proto=telemetry_gateway.v1.RecordEventsBody",
                                  "application/proto", "application/x-protobuffer"])
headers = st.fixed_dictionaries({  # mostly protobuf
    "Content-Type": st.one_of(protobuf_types, protobuf_types, st.sampled_from(
        ["application/json", "application/octet-stream", "text/plain", ""])),
}, optional={"Content-Encoding": ENCODINGS, "Authorization": AUTHORIZATIONS,
             "Accept": st.sampled_from([a for a in ACCEPTS if a])})
licensed_often = st.sampled_from([True, True, False])  # a license in the header (else maybe in the body)


def request(body: Body, hdrs: dict, gzip_it: bool, licensed: bool, license_key: str) -> tuple[bytes, dict, bool]:
    """The request's bytes and headers, and whether its answer must be protobuf: what Accept names, else the
    request's own encoding (docs/api.md)."""
    data, hdrs = request_parts(body.encode(license_key), hdrs, gzip_it, license_key if licensed else None)
    named = ACCEPTS[hdrs.get("Accept")]
    protobuf_request = hdrs.get("Content-Type", "").split(";")[0].strip().lower() in PROTOBUF_TYPES
    return data, hdrs, named if named is not None else protobuf_request


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=licensed_often)
def test_random_protobuf_requests_never_5xx_in_process(in_process, prod_license, fuzz_pull, accepted_batches, body,
                                                       hdrs, gzip_it, licensed):
    data, hdrs, protobuf = request(body, hdrs, gzip_it, licensed, prod_license)
    resp = in_process.post("/v1/events", data=data, headers=hdrs)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.data, accepted_batches, protobuf)


@settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=licensed_often)
def test_random_protobuf_requests_never_5xx_over_http(prod_server, prod_license, http, fuzz_pull, accepted_batches,
                                                      body, hdrs, gzip_it, licensed):
    data, hdrs, protobuf = request(body, hdrs, gzip_it, licensed, prod_license)
    resp = http.post(f"{prod_server.url}/v1/events", data=data, headers=hdrs, timeout=10)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.content, accepted_batches, protobuf)


def test_only_answered_protobuf_batches_were_published(pubsub_clients, fuzz_pull, accepted_batches):
    """Runs after the fuzz tests: the topic holds exactly one message per batch answered with successes."""
    assert accepted_batches, "no request of the fuzz was accepted: its bodies test only refusals"
    assert sorted(drain(pubsub_clients[1], fuzz_pull)) == sorted(accepted_batches)
