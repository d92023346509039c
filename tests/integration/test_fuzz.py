"""Hostile input over real HTTP: random bodies and headers never cause a 5xx, and nothing is published."""

from __future__ import annotations

import gzip
import json
import os

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import make_body, make_event

pytestmark = pytest.mark.integration
# In-process (functions-framework's app, real Gateway, real Pub/Sub emulator) at CI size; over real HTTP fewer.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
HTTP_EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "500"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
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
    "Content-Encoding": st.sampled_from(["gzip", "identity", "br", "GZIP"]),
    "Authorization": st.sampled_from(["Bearer x", "Basic y", "Bearer ", "bearer abc.def"]),
})


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def accepted_batches() -> list[int]:
    """Counts every answer that published a batch (200 with at least one succeeded event)."""
    return []


@pytest.fixture(scope="module")
def fuzz_pull(prod_server, pubsub_clients):
    """A subscription attached before the fuzz run, to compare what was published with what was answered."""
    from devtools.topology import ensure_subscription
    from tests.conftest import PROJECT

    _, subscriber = pubsub_clients
    topic = f"projects/{PROJECT}/topics/{prod_server.topic}"
    return ensure_subscription(subscriber, PROJECT, f"fuzz-{os.getpid()}", topic)


@pytest.fixture(scope="module")
def in_process(prod_server, keys, tmp_path_factory, pubsub_emulator):
    """functions-framework's own app for `ingest`, in this process, configured like prod_server."""
    import functions_framework

    from devtools.procs import ROOT

    trusted = tmp_path_factory.mktemp("fuzz") / "trusted.pub"
    trusted.write_text(keys["prod"].public_path.read_text())
    env = {"TELEMETRY_ENV": "prod", "TRUSTED_LICENSE_KEYS_FILE": str(trusted), "PUBSUB_TOPIC": prod_server.topic,
           "GOOGLE_CLOUD_PROJECT": "test-project", "MAX_EVENTS_PER_REQUEST": "100",
           "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    with pytest.MonkeyPatch.context() as patch:  # the settings are read at import; restored afterwards
        for name, value in env.items():
            patch.setenv(name, value)
        app = functions_framework.create_app("ingest", str(ROOT / "functions" / "ingest" / "main.py"))
    return app.test_client()


def check_answer(status: int, content_type: str, doc: dict, accepted_batches: list[int]) -> None:
    """Never a 5xx; always JSON; errors in the error shape; successes counted."""
    assert status < 500, doc
    assert content_type.startswith("application/json")
    if status >= 400:
        assert set(doc) == {"error"} and doc["error"]["code"] and doc["error"]["message"]
    else:
        assert set(doc) == {"succeededEvents", "failedEvents"}
        if doc["succeededEvents"]:
            accepted_batches.append(len(doc["succeededEvents"]))


def request_parts(keys, body: bytes, hdrs: dict, gzip_it: bool, licensed: bool) -> tuple[bytes, dict]:
    hdrs = dict(hdrs)
    if licensed:
        hdrs["Authorization"] = f"Bearer {_license(keys)}"
    data = gzip.compress(body) if gzip_it and hdrs.get("Content-Encoding", "").lower() == "gzip" else body
    return data, hdrs


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=st.booleans())
def test_random_requests_never_5xx_in_process(in_process, keys, fuzz_pull, accepted_batches, body, hdrs, gzip_it,
                                              licensed):
    data, hdrs = request_parts(keys, body, hdrs, gzip_it, licensed)
    resp = in_process.post("/v1/events", data=data, headers=hdrs)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.get_json(), accepted_batches)


@settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, hdrs=headers, gzip_it=st.booleans(), licensed=st.booleans())
def test_random_requests_never_5xx_over_http(prod_server, keys, http, fuzz_pull, accepted_batches, body, hdrs,
                                             gzip_it, licensed):
    data, hdrs = request_parts(keys, body, hdrs, gzip_it, licensed)
    resp = http.post(f"{prod_server.url}/v1/events", data=data, headers=hdrs, timeout=30)
    check_answer(resp.status_code, resp.headers["Content-Type"], resp.json(), accepted_batches)


def test_only_answered_batches_were_published(pubsub_clients, fuzz_pull, accepted_batches):
    """Runs after the fuzz test: the topic holds exactly one message per batch answered with successes."""
    _, subscriber = pubsub_clients
    published: list[int] = []
    while True:
        resp = subscriber.pull(subscription=fuzz_pull, max_messages=1000, timeout=10)
        if not resp.received_messages:
            break
        subscriber.acknowledge(subscription=fuzz_pull, ack_ids=[m.ack_id for m in resp.received_messages])
        published += [int(m.message.attributes["eventCount"]) for m in resp.received_messages]
    assert sorted(published) == sorted(accepted_batches)


_cached: dict[str, str] = {}


def _license(keys) -> str:
    if "k" not in _cached:
        _cached["k"] = keys["prod"].issue()
    return _cached["k"]


def test_refused_requests_publish_nothing(prod_server, keys, subscription):
    pull = subscription(prod_server)
    for data in (b"\x00", b"{}", orjson.dumps({**make_body([make_event()]), "metadata": 5})):
        resp = requests.post(f"{prod_server.url}/v1/events", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {_license(keys)}", "Content-Type": "application/json"})
        assert resp.status_code == 400
    assert pull(expect=0, timeout=2) == []
