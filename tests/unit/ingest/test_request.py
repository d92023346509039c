"""The RecordEvents request: Authorization header, JSON document, caller identifier."""

from __future__ import annotations

import orjson
import pytest

from shared.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from shared.ingest.config import IngestConfig
from shared.ingest.licenses.verifier import License
from shared.ingest.request import bearer_token, parse_document, parse_identity

LICENSE = License("f" * 64, ("dev",), None)
DEV = IngestConfig.from_env({"TELEMETRY_ENV": "dev"})


@pytest.mark.parametrize(("header", "token"), [(None, None), ("", None), ("Bearer abc", "abc"),
                                               ("bearer  a b ", "a b")])
def test_bearer_token(header, token):
    assert bearer_token(header, 4096) == token


@pytest.mark.parametrize("header", ["Basic abc", "Bearer ", "Bearer", "x" * 5000])
def test_bad_authorization(header):
    with pytest.raises(Unauthorized) as exc:
        bearer_token(header, 4096)
    assert exc.value.code == "invalid_authorization"


@pytest.mark.parametrize(("raw", "error", "code"), [
    (b"{", BadRequest, "malformed_json"), (b"[]", BadRequest, "invalid_request"),
    (b'{"events": []}', BadRequest, "invalid_metadata"), (b'{"metadata": {}}', BadRequest, "invalid_request"),
    (orjson.dumps({"metadata": {}, "events": [{}] * 3}), PayloadTooLarge, "too_many_events")])
def test_document_refusals(raw, error, code):
    with pytest.raises(error) as exc:
        parse_document(raw, max_events=2)
    assert exc.value.code == code


def test_document_and_request_id():
    parsed = parse_document(b'{"metadata": {"requestId": "r-1"}, "events": [{"id": "a"}]}', max_events=2)
    assert parsed.events == [{"id": "a"}] and parsed.request_id == "r-1"
    assert parse_document(b'{"metadata": {}, "events": []}', 2).request_id is None


def test_identity_of_a_licensed_instance():
    ident = parse_identity({"identifier": {"licensedInstance": {"instanceId": "i", "externalUrl": "https://x"}}},
                           LICENSE, DEV)
    assert (ident.instance_id, ident.external_url, ident.license_fingerprint, ident.license_tags, ident.kind) == \
        ("i", "https://x", "f" * 64, ("dev",), "licensed_instance")


@pytest.mark.parametrize(("metadata", "lic", "error", "code"), [
    ({}, LICENSE, BadRequest, "invalid_metadata"),
    ({"identifier": {"licensedInstance": {}, "unlicensedInstance": {}}}, LICENSE, BadRequest, "invalid_metadata"),
    ({"identifier": {"licensedInstance": "x"}}, LICENSE, BadRequest, "invalid_metadata"),
    ({"identifier": {"licensedInstance": {"instanceId": ""}}}, LICENSE, BadRequest, "invalid_metadata"),
    ({"identifier": {"licensedInstance": {"instanceId": "x" * 257}}}, LICENSE, BadRequest, "invalid_metadata"),
    ({"identifier": {"licensedInstance": {"instanceId": "i"}}}, None, Unauthorized, "missing_license"),
    ({"identifier": {"unlicensedInstance": {"instanceId": "i"}}}, None, Forbidden, "unlicensed_not_allowed"),
    ({"identifier": {"managedService": {"serviceId": "s"}}}, None, Forbidden, "identifier_not_allowed"),
])
def test_identity_refusals(metadata, lic, error, code):
    with pytest.raises(error) as exc:
        parse_identity(metadata, lic, DEV)
    assert exc.value.code == code


def test_metadata_is_capped_and_never_a_500():
    for metadata in ({f"k{i}": 1 for i in range(9)}, {"requestId": "x" * 5000}, {"n": 2**70}):
        with pytest.raises(BadRequest) as exc:
            parse_document(orjson.dumps({"metadata": {}, "events": []})[:-1].replace(
                b'"metadata":{}', b'"metadata":' + _json(metadata)) + b"}", max_events=10)
        assert exc.value.code == "invalid_metadata"


def _json(value: object) -> bytes:
    import json

    return json.dumps(value).encode()
