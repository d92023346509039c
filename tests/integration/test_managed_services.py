"""Managed services over real HTTP: Google ID tokens (signed by a test issuer, certificates served locally)."""

from __future__ import annotations

import gzip
import uuid

import orjson
import pytest
import requests

from tests.helpers import TokenIssuer, make_event

pytestmark = pytest.mark.integration
AUDIENCE = "https://telemetry-ingest.example.run.app"
SERVICE_EMAIL = "cody-gateway@svc-project.iam.gserviceaccount.com"


def body(identifier: dict, events: list | None = None) -> bytes:
    return orjson.dumps({"metadata": {"requestId": str(uuid.uuid4()), "identifier": identifier},
                         "events": events or [make_event()]})


SERVICE = {"managedService": {"serviceId": "cody-gateway", "serviceEnvironment": "prod"}}


def post(server, data: bytes, token: str | None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return requests.post(f"{server.url}/v1/events", data=data, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(server_factory, keys, google_certs, tmp_path_factory):
    services = tmp_path_factory.mktemp("services") / "managed-services.txt"
    services.write_text(f"# service id, then the account allowed to speak for it\ncody-gateway {SERVICE_EMAIL}\n"
                        "other-service other@svc-project.iam.gserviceaccount.com\n")
    return server_factory(TELEMETRY_ENV="dev", TRUSTED_LICENSE_KEYS_FILE=str(keys["dev"].public_path),
                          MANAGED_SERVICES_FILE=str(services), ID_TOKEN_AUDIENCE=AUDIENCE,
                          GOOGLE_ID_TOKEN_CERTS_URL=google_certs["url"])


def test_a_managed_service_records_events(server, google_certs, subscription):
    pull = subscription(server)
    issuer = google_certs["issuer"]
    hits = google_certs["hits"][0]
    for _ in range(5):
        resp = post(server, body(SERVICE), issuer.token(SERVICE_EMAIL, AUDIENCE))
        assert resp.status_code == 200 and len(resp.json()["succeededEvents"]) == 1, resp.text
    assert google_certs["hits"][0] - hits <= 1  # certificates kept as their Cache-Control says
    identity = orjson.loads(gzip.decompress(pull(expect=5)[0].data))["identity"]
    assert identity == {"kind": "managed_service", "instanceId": "cody-gateway", "externalUrl": None,
                        "licenseFingerprint": None, "licenseTags": [], "environment": "dev",
                        "serviceEnvironment": "prod", "callerEmail": SERVICE_EMAIL}


@pytest.mark.parametrize("case", ["expired", "wrong_audience", "wrong_signer", "malformed", "unverified_email",
                                  "not_google"])
def test_bad_tokens_are_401(server, google_certs, case):
    issuer = google_certs["issuer"]
    token = {
        "expired": lambda: issuer.token(SERVICE_EMAIL, AUDIENCE, expires_in=-3600),
        "wrong_audience": lambda: issuer.token(SERVICE_EMAIL, "https://elsewhere.example.com"),
        "wrong_signer": lambda: TokenIssuer(kid=issuer.kid).token(SERVICE_EMAIL, AUDIENCE),
        "malformed": lambda: "eyJhbGciOiJSUzI1NiJ9.not-base64!.sig",
        "unverified_email": lambda: issuer.token(SERVICE_EMAIL, AUDIENCE, verified=False),
        "not_google": lambda: issuer.token(SERVICE_EMAIL, AUDIENCE, issuer="https://evil.example.com"),
    }[case]()
    resp = post(server, body(SERVICE), token)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_id_token", resp.text


def test_an_account_may_speak_only_for_its_services(server, google_certs):
    token = google_certs["issuer"].token("other@svc-project.iam.gserviceaccount.com", AUDIENCE)
    resp = post(server, body(SERVICE), token)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "service_not_allowed"


def test_credentials_must_match_the_identifier(server, google_certs, keys):
    token = google_certs["issuer"].token(SERVICE_EMAIL, AUDIENCE)
    licensed = {"licensedInstance": {"instanceId": "i-1"}}
    as_instance = post(server, body(licensed), token)
    assert as_instance.status_code == 401 and as_instance.json()["error"]["code"] == "license_required"
    as_service = post(server, body(SERVICE), keys["dev"].issue(tags=("dev",)))
    assert as_service.status_code == 401 and as_service.json()["error"]["code"] == "id_token_required"
    assert post(server, body(SERVICE), None).status_code == 401


def test_without_managed_services_configured_tokens_and_identifiers_are_refused(dev_server, google_certs):
    token = google_certs["issuer"].token(SERVICE_EMAIL, AUDIENCE)
    resp = post(dev_server, body(SERVICE), token)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_id_token"


def test_managed_service_rows_in_bigquery(pipeline, google_certs):
    """End to end: the row carries caller_kind, the service id, its environment and the token's email."""
    from tests.integration.rows import wait_rows

    event = make_event()
    token = google_certs["issuer"].token(SERVICE_EMAIL, pipeline.env["ID_TOKEN_AUDIENCE"])
    resp = requests.post(f"{pipeline.ingest.url}/v1/events", data=body(SERVICE, [event]), timeout=30,
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    (row,) = wait_rows(pipeline, "events", [event["id"]], 1)
    assert (row.caller_kind, row.instance_id, row.service_environment, row.caller_email) == (
        "managed_service", "cody-gateway", "prod", SERVICE_EMAIL)
    assert row.license_fingerprint is None and row.license_tags == []


def test_client_sends_as_a_managed_service(server, google_certs, tmp_path):
    from tests.helpers import cli

    token_file = tmp_path / "id-token"
    token_file.write_text(google_certs["issuer"].token(SERVICE_EMAIL, AUDIENCE))
    events = b"\n".join(orjson.dumps(make_event()) for _ in range(3)) + b"\n"
    sent = cli("send", "-", "--url", server.url, "--service-id", "cody-gateway", "--service-environment", "prod",
               "--id-token-file", str(token_file), stdin=events)
    assert sent.returncode == 0 and b"3 succeeded" in sent.stdout, sent.stdout + sent.stderr
