"""docs/openapi.yaml, the HTTP contract, agrees with the code: every error, refusal and warning code the code can
answer (read from the code itself), every event field the JSON schema declares, and the default limits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from devtools.procs import ROOT
from shared import errors
from shared.event import ID_MAX, NAME_MAX, NAME_RULE, STR_MAX, VERSION_MAX
from shared.ingest.batch import WARNINGS
from shared.ingest.body import CONTENT_TYPES
from shared.ingest.config import IngestConfig
from shared.ingest.request import MAX_ID_CHARS, MAX_METADATA_FIELDS
from shared.ingest.schema import known_fields

CONTRACT = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
SCHEMAS = CONTRACT["components"]["schemas"]
STATUS_OF = {cls.__name__: cls.status for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.GatewayError) and cls is not errors.GatewayError}


def literal_calls(names: set[str], position: dict[str, int]) -> dict[str, set[str]]:
    """For each call of one of `names` in shared/, the string literal at its argument `position[name]`; a call
    with anything else there fails the test (the contract could not be checked against it)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
                arg = node.args[position.get(node.func.id, 0)] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(node.func.id, set()).add(arg.value)
                elif not (isinstance(arg, ast.Attribute) and arg.attr == "reason"):  # a verdict passed on
                    pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)} has no literal code")
    return found


def codes_in(schema: dict) -> set[str]:
    """The enum of an Error{status} schema's error.code."""
    return set(schema["properties"]["error"]["allOf"][1]["properties"]["code"]["enum"])


def test_every_error_the_code_raises_is_in_the_contract_under_its_status_and_no_other():
    raised: dict[int, set[str]] = {}
    for cls, codes in literal_calls(set(STATUS_OF), {}).items():
        raised.setdefault(STATUS_OF[cls], set()).update(codes)
    raised[500] = {"internal"}  # shared/ingest/http.py answers an unforeseen exception with it
    assert "internal" in (ROOT / "shared" / "ingest" / "http.py").read_text()
    declared = {int(name[5:]): codes_in(schema) for name, schema in SCHEMAS.items() if re.fullmatch(r"Error\d{3}",
                                                                                                    name)}
    assert declared == raised
    responses = CONTRACT["paths"]["/v1/events"]["post"]["responses"]
    assert {int(s) for s in responses} - {200} == set(raised)


def test_the_event_refusals_and_warnings_are_the_code_s():
    reasons = literal_calls({"Refusal", "Failure"}, {"Refusal": 0, "Failure": 2})
    assert set(SCHEMAS["EventFailure"]["properties"]["reason"]["enum"]) == reasons["Refusal"] | reasons["Failure"]
    assert set(SCHEMAS["EventWarning"]["properties"]["code"]["enum"]) == set(WARNINGS)


def declared_tree(schema: dict) -> dict:
    """A JSON schema's property names, nested as shared.ingest.schema.known_fields() nests them."""
    schema = resolve(schema)
    return {name: (declared_tree(sub) if "properties" in resolve(sub) else None)
            for name, sub in schema.get("properties", {}).items()}


def resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[1]] if ref else schema


def test_the_event_schema_declares_exactly_the_fields_marshmallow_declares():
    assert declared_tree(SCHEMAS["Event"]) == known_fields()


def test_the_limits_are_the_settings_defaults_and_the_code_s_constants():
    defaults = {s.env: s.default for s in IngestConfig.declared()}
    events = SCHEMAS["RecordEventsRequest"]["properties"]["events"]
    body = CONTRACT["paths"]["/v1/events"]["post"]["requestBody"]
    assert events["maxItems"] == defaults[events["x-setting"]] and events["x-setting"] == "MAX_EVENTS_PER_REQUEST"
    assert body["x-max-bytes"] == defaults[body["x-setting"]]
    assert SCHEMAS["Event"]["x-max-bytes"] == defaults[SCHEMAS["Event"]["x-setting"]]
    event = SCHEMAS["Event"]["properties"]
    assert event["id"]["maxLength"] == ID_MAX and SCHEMAS["Name"]["maxLength"] == NAME_MAX
    assert SCHEMAS["Name"]["pattern"] == NAME_RULE.pattern.replace(r"\Z", "$")
    assert SCHEMAS["OptionalString"]["maxLength"] == STR_MAX
    assert event["source"]["properties"]["server"]["properties"]["version"]["maxLength"] == VERSION_MAX
    metadata = SCHEMAS["RequestMetadata"]
    assert metadata["maxProperties"] == MAX_METADATA_FIELDS
    assert metadata["properties"]["requestId"]["maxLength"] == MAX_ID_CHARS


def test_every_accepted_content_type_is_a_request_body_of_the_contract():
    body = CONTRACT["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == set(CONTENT_TYPES)


def test_docs_api_md_lists_the_contract_s_error_codes():
    """The prose's table of whole-request errors names the same codes under the same statuses."""
    text = (ROOT / "docs" / "api.md").read_text()
    table = text.split("### Whole-request errors", 1)[1].split("###", 1)[0]
    prose: dict[int, set[str]] = {}
    for row in re.findall(r"^\| (\d{3}(?: / \d{3})?) \| (.+?) \|", table, re.M):
        statuses = [int(s) for s in row[0].split(" / ")]
        codes = re.findall(r"`([a-z_]+)`", row[1])
        for status, code in zip(statuses * len(codes), codes, strict=False) if len(statuses) > 1 else (
                (statuses[0], c) for c in codes):
            prose.setdefault(status, set()).add(code)
    declared = {int(name[5:]): codes_in(s) for name, s in SCHEMAS.items() if re.fullmatch(r"Error\d{3}", name)}
    assert prose == {status: codes for status, codes in declared.items() if status != 500}


def test_the_contract_s_version_is_its_path_s():
    assert CONTRACT["info"]["version"] == "v1"
    assert [p for p in CONTRACT["paths"] if not p.startswith("/__")] == ["/v1/events"]
    assert Path(ROOT / "docs" / "openapi.yaml").read_text().startswith("openapi: 3.1.")
