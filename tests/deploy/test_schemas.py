"""The stand-in's schema check (tests/deploy/standin/schemas.py) finds the method gcloud called and catches answers
that Google's generated messages do not declare."""

from __future__ import annotations

import json

import pytest

from tests.deploy.standin.schemas import SchemaCheck, method_of, problems

CERTIFICATE = {"kind": "compute#sslCertificate", "name": "c", "type": "MANAGED", "selfLink": "https://x/c",
               "managed": {"domains": ["a.example.com"], "status": "PROVISIONING",
                           "domainStatus": {"a.example.com": "PROVISIONING"}}}


@pytest.mark.parametrize(("api", "verb", "path", "method_id"), [
    ("compute", "GET", "v1/projects/p/global/sslCertificates/c", "compute.sslCertificates.get"),
    ("compute", "POST", "v1/projects/p/global/securityPolicies/s/patchRule", "compute.securityPolicies.patchRule"),
    ("iam", "GET", "v1/projects/p/serviceAccounts", "iam.projects.serviceAccounts.list"),
    ("serviceusage", "POST", "v1/projects/p/services:batchEnable", "serviceusage.services.batchEnable"),
    ("cloudfunctions", "PATCH", "v2/projects/p/locations/r/functions/f",
     "cloudfunctions.projects.locations.functions.patch"),
    ("bigquerydatatransfer", "PATCH", "v1/projects/1/locations/us/transferConfigs/t",
     "bigquerydatatransfer.projects.locations.transferConfigs.patch"),
    ("bigquery", "GET", "bigquery/v2/projects/p/datasets/d", "bigquery.datasets.get"),
])
def test_the_method_is_the_generated_client_s_most_specific_match(api, verb, path, method_id):
    method = method_of(api, verb, path)
    assert method is not None and method.id == method_id


def test_a_path_of_no_method_matches_none():
    assert method_of("compute", "GET", "v1/projects/p/nothing/here/at/all") is None
    assert method_of("compute", "GET", "no-version") is None


def test_an_answer_as_google_declares_it_has_no_problems():
    method = method_of("compute", "GET", "v1/projects/p/global/sslCertificates/c")
    assert problems(method.response, CERTIFICATE) == []


@pytest.mark.parametrize(("answer", "found"), [
    ({**CERTIFICATE, "bogus": 1}, "bogus: not in SslCertificate"),
    ({**CERTIFICATE, "managed": {**CERTIFICATE["managed"], "state": "ACTIVE"}}, "managed.state: not in"),
    ({**CERTIFICATE, "managed": {**CERTIFICATE["managed"], "status": "READY"}}, "managed.status: not in"),
    ({**CERTIFICATE, "name": 5}, "ValidationError"),
])
def test_an_unknown_field_enum_value_or_type_is_a_problem(answer, found):
    method = method_of("compute", "GET", "v1/projects/p/global/sslCertificates/c")
    assert any(found in p for p in problems(method.response, answer)), problems(method.response, answer)


def test_the_check_records_methods_violations_and_unmatched_paths():
    check = SchemaCheck()
    check.check("compute", "GET", "v1/projects/p/global/sslCertificates/c", json.dumps(CERTIFICATE).encode())
    check.check("compute", "GET", "v1/projects/p/global/sslCertificates/c", json.dumps({"zzz": 1}).encode())
    check.check("compute", "GET", "v1/projects/p/nowhere/x/y/z", b"{}")
    check.check("upload", "PUT", "anything", b"{}")  # not an API with messages: not checked
    seen = check.snapshot()
    assert seen["checked"] == {"compute.sslCertificates.get": 2}
    assert [v["problem"] for v in seen["violations"]] == ["zzz: not in SslCertificate"]
    assert seen["unmatched"] == {"GET compute v1/projects/p/nowhere/x/y/z": 1}
