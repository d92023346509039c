"""The contract (docs/openapi.yaml) against a running ingest: schemathesis generates requests from it (coverage and
fuzzing phases, a fixed seed) and checks every answer conforms; a Python client generated from it
(openapi-python-client) sends a batch and reads the per-event verdicts and warnings.

SCHEMATHESIS_EXAMPLES (default 40 per operation; `make fuzz`: 1000) bounds the run.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema_rs
import pytest
import requests
import yaml

from devtools.procs import ROOT
from tests.helpers import make_body, make_event
from tools.client import Sender

pytestmark = pytest.mark.integration
CONTRACT = ROOT / "docs" / "openapi.yaml"
BIN = Path(sys.executable).parent
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "40"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")


@pytest.fixture(scope="module")
def contract_server(server_factory, keys):
    """A dev ingest that takes licensed and unlicensed instances (no managed services)."""
    return server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                          ALLOW_UNLICENSED_INSTANCES="true")


def schemathesis(url: str, har: Path, headers: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`st run` of the contract against url; every request and answer recorded in a HAR file."""
    args = [str(BIN / "st"), "run", str(CONTRACT), "--url", url, "--phases", "coverage,fuzzing",
            "--checks", ",".join(CHECKS), "--max-examples", str(EXAMPLES), "--seed", "20261208",
            "--report", "har", "--report-har-path", str(har), "--no-color", "--workers", "1"]
    for header in headers:
        args += ["--header", header]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)


def as_json(text: str | None) -> object:
    try:
        return json.loads(text or "")
    except ValueError:
        return None


def events_answers(har: Path) -> list[tuple[int, dict | None, object]]:
    """(status, JSON answer, JSON request body) of every POST /v1/events the run made."""
    found = []
    for entry in json.loads(har.read_text())["log"]["entries"]:
        if entry["request"]["method"] == "POST" and entry["request"]["url"].endswith("/v1/events"):
            found.append((entry["response"]["status"], as_json(entry["response"]["content"].get("text")),
                          as_json(entry["request"].get("postData", {}).get("text"))))
    return found


def identifier_kind(body: object) -> str | None:
    """The one identifier a request body names, if it is well formed enough to name one."""
    try:
        (kind,) = body["metadata"]["identifier"]
    except (TypeError, KeyError, ValueError):
        return None
    return kind


@pytest.mark.parametrize("caller", ["licensed", "anonymous"])
def test_every_generated_request_gets_an_answer_the_contract_allows(contract_server, keys, tmp_path, caller):
    headers = (f"Authorization: Bearer {keys['dev'].issue(tags=('dev',))}",) if caller == "licensed" else ()
    run = schemathesis(contract_server.url, tmp_path / "run.har", headers)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    answers = events_answers(tmp_path / "run.har")
    statuses = Counter(status for status, _, _ in answers)
    print(f"\n{caller}: {len(answers)} POST /v1/events, by status {dict(sorted(statuses.items()))}")
    assert not any(status >= 500 for status in statuses)
    if caller == "licensed":  # bodies that name an instance mostly reach the per-event verdicts
        named = [(status, answer) for status, answer, body in answers
                 if identifier_kind(body) in ("licensedInstance", "unlicensedInstance")]
        verdicts = [answer for status, answer in named if status == 200]
        print(f"{len(verdicts)} of the {len(named)} naming an instance answered per event")
        assert len(verdicts) > len(named) / 2
        assert any(answer["failedEvents"] for answer in verdicts)
    else:  # no credential: only an unlicensed instance gets through (a generated licenseKey is never valid)
        assert {identifier_kind(body) for status, _, body in answers if status == 200} <= {"unlicensedInstance"}
        assert statuses[401] > 0


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory) -> object:
    """The package openapi-python-client generates from the contract, importable (its JSON operations: the
    generator skips the protobuf bodies, which shared/gateway.proto describes)."""
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("project_name_override: gateway-client\npackage_name_override: gateway_client\n"
                      "post_hooks: []\n")
    done = subprocess.run([str(BIN / "openapi-python-client"), "generate", "--path", str(CONTRACT), "--config",
                           str(config), "--output-path", str(out / "gateway_client"), "--meta", "none"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out))  # --meta none: the output folder is the package itself
    try:
        yield importlib.import_module("gateway_client")
    finally:
        sys.path.remove(str(out))


def test_a_client_generated_from_the_contract_sends_a_batch_and_reads_its_verdicts(contract_server, keys,
                                                                                   generated_client):
    from gateway_client import AuthenticatedClient
    from gateway_client.api.default import record_events
    from gateway_client.models import RecordEventsAnswer, RecordEventsRequest

    good = make_event(deviceModel="x1")  # a field the gateway does not declare: kept, with a warning
    body = make_body([good, make_event(feature="Bad")], "inst-generated")
    client = AuthenticatedClient(base_url=contract_server.url, token=keys["dev"].issue(tags=("dev",)))
    answer = record_events.sync(client=client, body=RecordEventsRequest.from_dict(body))
    assert isinstance(answer, RecordEventsAnswer)
    assert answer.succeeded_events == [good["id"]]
    [failed] = answer.failed_events
    assert (failed.index, failed.reason.value, failed.retryable) == (1, "invalid_event", False)
    assert [(w.index, w.code.value) for w in answer.warnings] == [(0, "unknown_fields_kept")]


class Recording(requests.Session):
    """A real session that keeps each request body (inflated) and its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[bytes, requests.Response]] = []

    def post(self, url: str, data: bytes | None = None, **kwargs: object) -> requests.Response:
        answer = super().post(url, data=data, **kwargs)
        self.exchanges.append((gzip.decompress(data), answer))
        return answer


def contract_schema(name: str) -> jsonschema_rs.Validator:
    """A validator of one of the contract's schemas (its $refs resolved within the contract)."""
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}",
                                        "components": yaml.safe_load(CONTRACT.read_text())["components"]})


def test_the_hand_written_client_agrees_with_the_contract(contract_server, keys):
    """tools.client (the CLI) sends bodies the contract describes (the event the test makes invalid aside: the
    contract's 200 refuses it alone) and reads answers it defines."""
    session = Recording()
    sender = Sender(contract_server.url, keys["dev"].issue(tags=("dev",)), "inst-cli", session=session,
                    batch_size=2)
    report = sender.send([make_event(), make_event(deviceModel="x1"), make_event(feature="Bad")])
    assert (report.succeeded, dict(report.warnings), report.ok) == (2, {"unknown_fields_kept": 1}, True)
    requests_ok, answers_ok = contract_schema("RecordEventsRequest"), contract_schema("RecordEventsAnswer")
    assert len(session.exchanges) == 2
    for body, answer in session.exchanges:
        sent = json.loads(body)
        requests_ok.validate({**sent, "events": [e for e in sent["events"] if e["feature"] != "Bad"]})
        assert answer.status_code == 200
        answers_ok.validate(answer.json())
