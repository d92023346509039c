"""Hostile input over real HTTP: random bodies and headers never cause a 5xx, and nothing is published."""

from __future__ import annotations

import json
import os

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import make_body, make_event
from tests.integration.attacks import AUTHORIZATIONS, ENCODINGS, check_answer, drain, json_like, request_parts

pytestmark = pytest.mark.integration
# In-process (functions-framework's app, real Gateway, real Pub/Sub emulator) at CI size; over real HTTP fewer.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4000"))  # `make fuzz`: 100,000
HTTP_EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "500"))

json_values = json_like(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20))
event_like = st.fixed_dictionaries(
    {}, optional={"id": json_values, "timestamp": json_values | st.just("2026-11-27T00:00:00Z"),
                  "feature": json_values | st.just("cody.chat"), "action": json_values | st.just("executed"),
                  "source": json_values | st.just({"server": {"version": "1"}}), "parameters": json_values,
                  "user": json_values, "interaction": json_values})


def dumps(value: object) -> bytes:
    """JSON bytes (the stdlib writes integers of any size, which clients may send)."""
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(dumps),
    st.lists(event_like, max_size=5).map(lambda evs: dumps({**make_body([]), "events": evs})),
    st.builds(lambda m: dumps({"metadata": m, "events": [make_event()]}), json_values),
)
headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", ""]),
    "Content-Encoding": ENCODINGS, "Authorization": AUTHORIZATIONS,
})


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=st.booleans())
def test_random_requests_never_5xx_in_process(in_process, prod_license, fuzz_pull, accepted_batches, body, hdrs,
                                              gzip_it, licensed):
    data, hdrs = request_parts(body, hdrs, gzip_it, prod_license if licensed else None)
    resp = in_process.post("/v1/events", data=data, headers=hdrs)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.data, accepted_batches)


@settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=st.booleans())
def test_random_requests_never_5xx_over_http(prod_server, prod_license, http, fuzz_pull, accepted_batches, body,
                                             hdrs, gzip_it, licensed):
    data, hdrs = request_parts(body, hdrs, gzip_it, prod_license if licensed else None)
    resp = http.post(f"{prod_server.url}/v1/events", data=data, headers=hdrs, timeout=30)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.content, accepted_batches)


def test_only_answered_batches_were_published(pubsub_clients, fuzz_pull, accepted_batches):
    """Runs after the fuzz test: the topic holds exactly one message per batch answered with successes."""
    assert sorted(drain(pubsub_clients[1], fuzz_pull)) == sorted(accepted_batches)


def test_refused_requests_publish_nothing(prod_server, prod_license, subscription):
    pull = subscription(prod_server)
    for data in (b"\x00", b"{}", orjson.dumps({**make_body([make_event()]), "metadata": 5})):
        resp = requests.post(f"{prod_server.url}/v1/events", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {prod_license}", "Content-Type": "application/json"})
        assert resp.status_code == 400
    assert pull(expect=0, timeout=2) == []
