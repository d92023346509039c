"""The Cloud Armor rules (tools.armor) against real credentials: license keys issued with the project's own tools,
Google-style ID tokens, and the settings files' thresholds."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import re
import secrets

import pytest

from devtools.armor_sim import OVER_RATE, Armor, Request, evaluated
from devtools.procs import ROOT
from shared.errors import ConfigError
from tests.helpers import KeyPair, TokenIssuer
from tools import armor, edge
from tools.cli import dispatch
from tools.licenses import parser as licenses_parser
from tools.settings import settings_file

AUDIENCE = "https://us-central1-sourcegraph-telemetry-gateway-prod.cloudfunctions.net/telemetry-ingest"
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def rules() -> list[armor.Rule]:
    return armor.rules(settings_file("prod"))


@pytest.fixture(scope="module")
def policy() -> Armor:
    """The policy deploy.sh creates, as Cloud Armor evaluates it (devtools/armor_sim.py)."""
    return Armor(edge.policy_rules(settings_file("prod")), OVER_RATE)


def acting(policy: Armor, path: str, authorization: str | None) -> int:
    """The priority of the rule that acts on this request."""
    return policy.rule_for(Request(0.0, "203.0.113.7", path, authorization)).priority


def key_of(policy: Armor, authorization: str | None, ip: str = "203.0.113.7", path: str = "/v1/events") -> bytes:
    """What the acting rule counts this request under (the header's bytes, or the address)."""
    request = Request(0.0, ip, path, authorization)
    return policy.rule_for(request).key(request)[-1]


@pytest.fixture(scope="module")
def licenses(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Licenses as operators issue them (python -m tools.licenses issue: a random nonce each), RSA with every
    signature format and Ed25519, plus two from the tests' own issuer that differ in their tags only."""
    issued = []
    for kind, formats in (("rsa", ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")), ("ed25519", (None,))):
        folder = tmp_path_factory.mktemp(kind)
        assert dispatch(licenses_parser(), ["keygen", "--out", str(folder), "--type", kind]) == 0
        for sig_format in formats:
            for _ in range(2):
                args = ["issue", "--key", str(folder / "license-key")]
                issued.append(run_issue([*args, "--signature-format", sig_format] if sig_format else args))
    pair = KeyPair(tmp_path_factory.mktemp("helpers"))
    issued += [pair.issue(tags=("dev",)), pair.issue(tags=("dev", "plan:team"))]
    return issued


def run_issue(args: list[str]) -> str:
    """`python -m tools.licenses issue ...` in process; the printed key."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert dispatch(licenses_parser(), args) == 0
    return out.getvalue().strip()


def signature_chars_in_key(header: str) -> int:
    """How many characters of the signature's base64 lie within the header's first 128 bytes."""
    key = header.encode()[:armor.KEY_BYTES].decode().removeprefix("Bearer ")
    visible = base64.urlsafe_b64decode(key[: len(key) // 4 * 4]).decode()
    return len(visible.split('"Blob":"', 1)[1])


def test_two_licenses_differ_within_the_first_128_bytes_cloud_armor_keys_on(rules, policy, licenses):
    """The license rule counts on `Authorization`, truncated to 128 bytes: distinct licenses must stay distinct
    there. A key starts with a fixed 24 characters, then its signature's format and the signature itself, so the
    128 bytes hold at least 32 bytes of signature (256 bits): no two licenses share a bucket, and nobody without
    the license can fill its bucket."""
    (license_rule,) = [r for r in rules if r.key == "HTTP_HEADER"]
    headers = [f"Bearer {key}" for key in licenses]
    assert all(acting(policy, "/v1/events", h) == license_rule.priority for h in headers)
    keys = [key_of(policy, h) for h in headers]
    assert all(len(k) == armor.KEY_BYTES for k in keys)
    assert len(set(keys)) == len(licenses)  # one bucket per license, even from one client IP
    assert min(signature_chars_in_key(h) for h in headers) >= 43  # 43 base64 characters = 32 bytes


def test_managed_services_tokens_share_their_first_128_bytes_so_their_rule_counts_per_client_ip(rules, policy):
    """A Google ID token is a JWT: its first ~110 bytes are the signing key's header, and the payload starts with
    claims every service's token shares (issuer, audience), so two services' tokens share their first 128 bytes.
    Keyed on the header they would share one budget; their own rule keys on the client IP instead, which differs
    per service (its egress) and which a caller without a token cannot take over."""
    issuer = TokenIssuer(kid=hashlib.sha1(b"google signing key").hexdigest())  # Google's kids are 40 hex digits
    tokens = [issuer.token(f"{name}@sourcegraph-{name}.iam.gserviceaccount.com", AUDIENCE)
              for name in ("cody-gateway", "analytics")]
    headers = [f"Bearer {t}" for t in tokens]
    as_header = evaluated(armor.Rule(0, "", "throttle", "HTTP_HEADER", 1, key_name="Authorization").resource())
    requests = [Request(0.0, "192.0.2.1", authorization=h) for h in headers]
    assert as_header.key(requests[0]) == as_header.key(requests[1]) != ("ALL",)
    (service_rule,) = [r for r in rules if r.header_pattern == armor.ID_TOKEN_HEADER]
    assert [acting(policy, "/v1/events", h) for h in headers] == [service_rule.priority] * 2
    assert service_rule.key == "IP" and service_rule.key_name is None
    assert key_of(policy, headers[0], "192.0.2.1") != key_of(policy, headers[1], "198.51.100.9")


def test_every_other_request_counts_per_client_ip_and_heartbeats_have_their_own_budget(rules, policy, licenses):
    """Cloud Armor applies the first rule that matches and no other. Without a credential of either shape, or
    with one written another way (a lowercase scheme, a space inside the key: forms the function accepts but Cloud
    Armor's byte-wise key would count as another license), a request to /v1/events falls to its per-IP throttle,
    which never bans (instances put the license in the body, many behind one NAT address); any other, to the per-IP
    rule that bans, whatever credential it carries (a scanner cannot leave the ban's rule by sending a license-shaped
    header or a token)."""
    heartbeat, license_rule, service_rule, events, everyone = rules
    key = licenses[0]
    token = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    cases = {
        ("/__heartbeat__", f"Bearer {key}"): heartbeat, ("/__lbheartbeat__", None): heartbeat,
        ("/__version__", None): heartbeat, ("/v1/events", f"Bearer {key}"): license_rule,
        ("/v1/events", None): events, ("/v1/events", "Bearer not-a-license"): events,
        ("/v1/events", f"bearer {key}"): events, ("/v1/events", f"Bearer {key[:40]} {key[40:]}"): events,
        ("/v1/events", f"Bearer  {key}"): events, ("/v1/events", f"Basic {key}"): events,
        ("/__heartbeat__/x", None): everyone, ("/v1/other", None): everyone, ("/", f"Basic {key}"): everyone,
        ("/v1/events", token): service_rule, ("/wp-login.php", token): everyone,
        ("/wp-login.php", f"Bearer {key}"): everyone, ("/v1/events/x", f"Bearer {key}"): everyone,
    }
    assert {case: acting(policy, *case) for case in cases} == {case: r.priority for case, r in cases.items()}
    assert everyone.action == "rate_based_ban" and everyone.key == "IP" and everyone.expression is None
    assert events.action == "throttle" and events.key == "IP" and events.expression == "request.path == '/v1/events'"
    assert heartbeat.key == "IP" and heartbeat.priority < license_rule.priority < service_rule.priority


def test_a_forged_license_shaped_header_gets_a_bucket_of_its_own_which_only_the_function_refuses(rules, policy):
    """What Cloud Armor cannot do: check a signature. A header shaped like a license, with random bytes, matches the
    license rule and gets a fresh 128-byte key each time; ingest answers 401 from its verification cache
    (docs/security.md "Limits at the edge", what is left)."""
    forged = [f"Bearer {armor.LICENSE_PREFIX}{secrets.token_urlsafe(300)}" for _ in range(2)]
    (license_rule,) = [r for r in rules if r.key == "HTTP_HEADER"]
    assert [acting(policy, "/v1/events", h) for h in forged] == [license_rule.priority] * 2
    assert key_of(policy, forged[0]) != key_of(policy, forged[1])


def test_the_rules_are_ones_cloud_armor_accepts(rules):
    """Descriptions of at most 64 characters, at most five subexpressions, thresholds within Cloud Armor's range,
    distinct priorities spaced for rules an operator adds between them."""
    assert [r.priority for r in rules] == sorted({r.priority for r in rules})
    assert all(b.priority - a.priority >= 10 for a, b in itertools.pairwise(rules))
    for rule in rules:
        assert len(rule.description) <= 64, rule.description
        assert (rule.expression or "").count("||") + (rule.expression or "").count("&&") + 1 <= 5
        assert 1 <= rule.count <= armor.MAX_COUNT[rule.action]
        assert rule.resource()["rateLimitOptions"]["exceedAction"] == "deny(429)"
        assert ("--enforce-on-key-name=Authorization" in rule.flags()) == (rule.key == "HTTP_HEADER")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_edge_bounds_a_license_across_every_instance_as_the_quota_bounds_one(environment):
    """docs/security.md "The global arithmetic": 120 requests a minute of at most MAX_EVENTS_PER_REQUEST events is
    QUOTA_EVENTS_PER_SECOND for the whole deployment, where the in-process quota alone allows that per instance."""
    bounds = armor.bounds(settings_file(environment))
    env = settings_file(environment)
    assert bounds["edge_events_per_second"] == float(env["QUOTA_EVENTS_PER_SECOND"])
    assert bounds["quota_events_per_second_all_instances"] == (
        float(env["QUOTA_EVENTS_PER_SECOND"]) * int(env["INGEST_MAX_INSTANCES"]))
    assert bounds["edge_events_per_second"] < bounds["quota_events_per_second_all_instances"]


def test_every_edge_setting_is_in_both_settings_files_and_explained():
    """One owner per setting: deploy/*.env holds each value, docs/security.md explains each default."""
    names = set(re.findall(r'"(EDGE_[A-Z_]+)"', (ROOT / "tools" / "armor.py").read_text()))
    names |= set(re.findall(r'"(EDGE_[A-Z_]+)"', (ROOT / "tools" / "edge.py").read_text()))
    assert len(names) >= 8
    security = (ROOT / "docs" / "security.md").read_text()
    for environment in ("dev", "prod"):
        assert names <= set(settings_file(environment)), environment
    assert [n for n in sorted(names) if f"`{n}`" not in security] == []


@pytest.mark.parametrize(("change", "message"), [
    ({"EDGE_LICENSE_REQUESTS_PER_MINUTE": ""}, "EDGE_LICENSE_REQUESTS_PER_MINUTE is missing"),
    ({"EDGE_IP_REQUESTS_PER_MINUTE": "10001"}, "from 1 to 10000"),  # a rate-based ban's threshold
    ({"EDGE_BAN_DURATION_SECONDS": "30"}, "one of 60, 120, 180"),  # 30 is an interval, not a ban duration
    ({"EDGE_BAN_INTERVAL_SECONDS": "90"}, "must be one of 10, 30, 60"),  # passes ">= 60", fails at rules create
    ({"EDGE_BAN_DURATION_SECONDS": "4000"}, "the values Cloud Armor takes"),
    ({"EDGE_BAN_THRESHOLD_REQUESTS": "600"}, "must be above .* = 600"),  # 60 a minute for 600 s: banned at the rate
    ({"EDGE_SERVICE_REQUESTS_PER_MINUTE": "many"}, "whole number"),
])
def test_a_bad_threshold_stops_the_deploy_with_its_name(change, message):
    with pytest.raises(ConfigError, match=message):
        armor.rules({**settings_file("dev"), **change})


def test_every_license_starts_with_the_prefix_the_license_rule_expects(licenses):
    assert all(key.startswith(armor.LICENSE_PREFIX) for key in licenses)
