"""What deploy.sh's edge step runs (tools.edge), from descriptions shaped as Compute answers them: created once,
updated in place, left alone when right, the address never recreated."""

from __future__ import annotations

import json
import re

import pytest

from devtools.procs import ROOT
from tools import armor
from tools.cli import dispatch
from tools.edge import RESOURCES, Edge, EdgeError, append_tiles, parser, read_live

BASE = "https://compute.googleapis.com/compute/v1/projects/p"


@pytest.fixture
def env(monkeypatch) -> dict[str, str]:
    """dev.env's settings with a domain, exported as deploy.sh does."""
    text = (ROOT / "deploy" / "dev.env").read_text()
    values = {m[1]: m[2].strip('"') for m in re.finditer(r"^([A-Z_][A-Z0-9_]*)=(.*)$", text, re.M)}
    values["INGEST_DOMAIN"] = "telemetry.example.com"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def edge(env) -> Edge:
    return Edge.from_env(env)


def verbs(commands: list[list[str]]) -> list[str]:
    return [" ".join(c[1:3]) for c in commands]


def live_policy(*rules: dict) -> dict:
    """A security policy as `gcloud compute security-policies describe --format=json` prints it (a list)."""
    default = {"priority": 2147483647, "action": "allow", "match": {"versionedExpr": "SRC_IPS_V1",
                                                                     "config": {"srcIpRanges": ["*"]}}}
    return {"name": "telemetry-ingest-armor", "rules": [*rules, default]}


def kept(rule: armor.Rule) -> dict:
    """The rule as Compute keeps it, with its output-only field."""
    return {"kind": "compute#securityPolicyRule", **rule.resource()}


def test_nothing_there_creates_every_resource_once_in_order(edge, tmp_path):
    planned = [edge.plan(r, None, tmp_path) for r in RESOURCES]
    assert [verbs(p) for p in planned] == [
        ["addresses create"], ["security-policies create"],
        ["network-endpoint-groups create"],
        ["backend-services create", "backend-services add-backend", "backend-services update"],
        ["url-maps create"], ["ssl-certificates create"], ["target-https-proxies create"], ["forwarding-rules create"],
        ["url-maps import"], ["target-http-proxies create"], ["forwarding-rules create"]]
    policy = json.loads((tmp_path / "telemetry-ingest-armor.json").read_text())
    assert [r["priority"] for r in policy["rules"]] == [1000, 2000, 3000, 3500, 4000, 2147483647]
    assert planned[1][0][-2:] == [f"--file-name={tmp_path}/telemetry-ingest-armor.json", "--file-format=json"]
    https, http = planned[7][0], planned[10][0]
    assert "--address=telemetry-ingest-ip" in https and "--ports=443" in https and "--ports=80" in http
    assert "--load-balancing-scheme=EXTERNAL_MANAGED" in https and "--load-balancing-scheme=EXTERNAL_MANAGED" in http
    redirect = json.loads((tmp_path / "telemetry-ingest-http-redirect.json").read_text())
    assert redirect["defaultUrlRedirect"] == {"httpsRedirect": True,
                                              "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}


def test_a_right_policy_is_left_alone_and_a_changed_threshold_updates_that_rule_only(edge, env, monkeypatch, tmp_path):
    current = live_policy(*[kept(r) for r in armor.rules(env)])
    assert edge.plan("policy", current, tmp_path) == []
    monkeypatch.setenv("EDGE_LICENSE_REQUESTS_PER_MINUTE", "240")
    (update,) = edge.plan("policy", current, tmp_path)
    assert update[3:5] == ["update", "2000"] and "--rate-limit-threshold-count=240" in update


def test_a_missing_rule_is_added_an_operators_rule_is_kept_and_a_ban_never_patched_into_a_throttle(edge, env,
                                                                                                     tmp_path):
    wanted = armor.rules(env)
    operators = {"priority": 10, "action": "deny(403)", "match": {"expr": {"expression": "origin.region_code == 'XX'"}}}
    banning = {**kept(wanted[2]), "action": "rate_based_ban"}  # the service rule, once a ban
    planned = edge.plan("policy", live_policy(operators, kept(wanted[0]), banning, *map(kept, wanted[3:])), tmp_path)
    assert [c[3:5] for c in planned] == [["create", "2000"], ["delete", "3000"], ["create", "3000"]]


def test_the_address_is_never_recreated(edge, tmp_path):
    address = {"name": "telemetry-ingest-ip", "address": "34.117.0.2", "ipVersion": "IPV6", "status": "IN_USE"}
    assert edge.plan("address", address, tmp_path) == []


def test_a_backend_gets_only_what_it_lacks(edge, tmp_path):
    neg = f"{BASE}/regions/us-central1/networkEndpointGroups/telemetry-ingest-neg"
    right = {"loadBalancingScheme": "EXTERNAL_MANAGED", "backends": [{"group": neg}],
             "logConfig": {"enable": True, "sampleRate": 1.0},
             "securityPolicy": f"{BASE}/global/securityPolicies/telemetry-ingest-armor"}
    assert edge.plan("backend", right, tmp_path) == []
    (detached,) = edge.plan("backend", {**right, "securityPolicy": None}, tmp_path)
    assert detached[2] == "update" and detached[5:] == ["--security-policy=telemetry-ingest-armor"]
    (added,) = edge.plan("backend", {**right, "backends": []}, tmp_path)
    assert added[2] == "add-backend"
    with pytest.raises(EdgeError, match="EXTERNAL_MANAGED"):
        edge.plan("backend", {**right, "loadBalancingScheme": "EXTERNAL"}, tmp_path)


def test_a_new_domain_gets_its_own_certificate_served_first_and_the_old_one_stays_until_detached(env, tmp_path):
    old, new = Edge.from_env(env), Edge.from_env({**env, "INGEST_DOMAIN": "telemetry-gateway.example.org"})
    assert old.name("certificate") != new.name("certificate")
    proxy = {"urlMap": f"{BASE}/global/urlMaps/telemetry-ingest-lb",
             "sslCertificates": [f"{BASE}/global/sslCertificates/{old.name('certificate')}"]}
    assert old.plan("https-proxy", proxy, tmp_path) == []
    (update,) = new.plan("https-proxy", proxy, tmp_path)
    assert f"--ssl-certificates={new.name('certificate')},{old.name('certificate')}" in update


def test_a_forwarding_rule_only_ever_changes_its_target(edge, tmp_path):
    rule = {"loadBalancingScheme": "EXTERNAL_MANAGED", "portRange": "443-443", "IPAddress": "34.117.0.2",
            "target": f"{BASE}/global/targetHttpsProxies/telemetry-ingest-https-proxy"}
    assert edge.plan("https-rule", rule, tmp_path) == []
    (retarget,) = edge.plan("https-rule", {**rule, "target": f"{BASE}/global/targetHttpsProxies/other"}, tmp_path)
    assert retarget[2] == "set-target"
    with pytest.raises(EdgeError, match="port 443"):
        edge.plan("https-rule", {**rule, "portRange": "8080-8080"}, tmp_path)


def test_a_network_endpoint_group_of_another_service_is_refused(edge, tmp_path):
    assert edge.plan("neg", {"cloudRun": {"service": "telemetry-ingest"}}, tmp_path) == []
    with pytest.raises(EdgeError, match="cannot be changed"):
        edge.plan("neg", {"cloudRun": {"service": "other"}}, tmp_path)


def test_the_redirect_is_rewritten_only_when_it_differs(edge, tmp_path):
    right = {"defaultUrlRedirect": {"httpsRedirect": True, "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT",
                                    "stripQuery": False}}
    assert edge.plan("redirect-map", right, tmp_path) == []
    assert verbs(edge.plan("redirect-map", {"defaultUrlRedirect": {"httpsRedirect": False}}, tmp_path)) == [
        "url-maps import"]


def test_a_described_policy_is_read_from_gclouds_list():
    assert read_live('[{"name": "p"}]') == {"name": "p"} and read_live("  ") is None


def test_the_cli_plans_every_resource_before_anything_runs(env, monkeypatch, capsys, tmp_path):
    """`plan` reads every description, then prints notes, commands and the DNS line; a resource that cannot be kept
    prints no command at all, so nothing changes."""
    live = tmp_path / "live"
    live.mkdir()
    (live / "address.json").write_text('{"name": "telemetry-ingest-ip", "address": "34.117.0.9"}')
    (live / "certificate.json").write_text('{"managed": {"status": "ACTIVE"}}')
    assert dispatch(parser(), ["plan", "--live", str(live), "--files", str(tmp_path)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines[0][0] == "#" and lines[0][1].startswith("per license: at most 120 requests a minute")
    assert ["#", "current: address telemetry-ingest-ip"] in lines
    assert ["#", "current: certificate " + Edge.from_env(env).name("certificate")] in lines
    assert lines[-1] == ["dns", "34.117.0.9", "ACTIVE"]
    assert lines[2][:3] == ["compute", "security-policies", "create"]
    (live / "neg.json").write_text('{"cloudRun": {"service": "other"}}')
    assert dispatch(parser(), ["plan", "--live", str(live), "--files", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "telemetry-ingest-neg" in out.err
    monkeypatch.delenv("INGEST_DOMAIN")
    assert dispatch(parser(), ["resources"]) == 1 and "INGEST_DOMAIN" in capsys.readouterr().err


def test_the_edge_tiles_go_below_the_dashboard(tmp_path):
    board, tiles = tmp_path / "board.json", ROOT / "deploy" / "dashboard-edge.json"
    board.write_text((ROOT / "deploy" / "dashboard.json").read_text())
    before = json.loads(board.read_text())["mosaicLayout"]["tiles"]
    append_tiles(board, tiles)
    after = json.loads(board.read_text())["mosaicLayout"]["tiles"]
    bottom = max(t.get("yPos", 0) + t["height"] for t in before)
    assert after[:len(before)] == before and len(after) == len(before) + 4
    assert min(t["yPos"] for t in after[len(before):]) == bottom
