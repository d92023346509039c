"""What deploy.sh's edge step asks (opt-in, INGEST_DOMAIN): the global external Application Load Balancer and the Cloud
Armor policy in front of ingest, each resource described first, then created, updated in place or left alone.

    python -m tools.edge resources                 # RESOURCE<TAB>describe command, one a line, in creation order
                                                   # (the edge's settings checked first)
    python -m tools.edge plan --live DIR --files DIR   # the commands (words TAB-separated, one a line) that make
                                                   # every resource right, from DIR/RESOURCE.json (empty: missing);
                                                   # the files they read (policy, redirect) go to --files
    python -m tools.edge dashboard BOARD TILES     # append the edge's tiles to the dashboard file BOARD
    python -m tools.edge name RESOURCE             # one resource's name (e.g. certificate, https-proxy)

Names follow INGEST_FUNCTION; the certificate's also INGEST_DOMAIN (a managed certificate's domains never change, so
another domain is another certificate). Commands are gcloud's words without `gcloud` and `--project`: deploy.sh adds
them. The address is never recreated: instances keep resolving the same IP.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError
from tools import armor
from tools.cli import dispatch

SCHEME = "EXTERNAL_MANAGED"  # the global external Application Load Balancer
REDIRECT = {"httpsRedirect": True, "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}
DEFAULT_RULE = {"priority": 2147483647, "description": "default rule", "action": "allow", "preview": False,
                "match": {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}}
RESOURCES = ("address", "policy", "neg", "backend", "url-map", "certificate", "https-proxy", "https-rule",
             "redirect-map", "http-proxy", "http-rule")
Command = list[str]


class EdgeError(Exception):
    """A live resource deploy.sh cannot make right in place (the message says what to do)."""


def name_of(link: str | None) -> str:
    """A resource's name from its URL."""
    return (link or "").rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Edge:
    """The edge of one deployment: its settings and the names of its resources."""

    function: str
    region: str
    domain: str
    log_sample_rate: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Edge:
        """From the exported settings file; INGEST_DOMAIN must be set (the edge is opt-in)."""
        missing = [n for n in ("INGEST_FUNCTION", "REGION", "INGEST_DOMAIN", "EDGE_LOG_SAMPLE_RATE")
                   if not env.get(n, "").strip()]
        if missing:
            raise ConfigError(f"the edge needs {', '.join(missing)} (deploy/*.env)")
        try:
            rate = float(env["EDGE_LOG_SAMPLE_RATE"])
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"EDGE_LOG_SAMPLE_RATE must be from 0 to 1, got {env['EDGE_LOG_SAMPLE_RATE']!r}")
        return cls(env["INGEST_FUNCTION"].strip(), env["REGION"].strip(), env["INGEST_DOMAIN"].strip().lower(), rate)

    def name(self, resource: str) -> str:
        """The name of one of the edge's resources."""
        if resource == "certificate":
            return f"{self.function}-cert-{hashlib.sha256(self.domain.encode()).hexdigest()[:8]}"
        suffix = {"address": "ip", "policy": "armor", "neg": "neg", "backend": "backend", "url-map": "lb",
                  "https-proxy": "https-proxy", "https-rule": "https", "redirect-map": "http-redirect",
                  "http-proxy": "http-proxy", "http-rule": "http"}[resource]
        return f"{self.function}-{suffix}"

    def describe(self, resource: str) -> Command:
        """The read-only command that shows the resource (JSON with --format=json)."""
        group = {"address": "addresses", "policy": "security-policies", "neg": "network-endpoint-groups",
                 "backend": "backend-services", "url-map": "url-maps", "certificate": "ssl-certificates",
                 "https-proxy": "target-https-proxies", "https-rule": "forwarding-rules",
                 "redirect-map": "url-maps", "http-proxy": "target-http-proxies", "http-rule": "forwarding-rules"}
        scope = {"policy": [], "neg": [f"--region={self.region}"]}.get(resource, ["--global"])
        return ["compute", group[resource], "describe", self.name(resource), *scope]

    def plan(self, resource: str, live: dict | None, files: Path) -> list[Command]:
        """The commands that make the resource right: none when it already is."""
        planner = {"address": self.plan_address, "policy": lambda live: self.plan_policy(live, files),
                   "neg": self.plan_neg,
                   "backend": self.plan_backend, "url-map": self.plan_url_map, "certificate": self.plan_certificate,
                   "https-proxy": self.plan_https_proxy, "https-rule": self.plan_https_rule,
                   "redirect-map": lambda live: self.plan_redirect_map(live, files), "http-proxy": self.plan_http_proxy,
                   "http-rule": self.plan_http_rule}[resource]
        return planner(live)

    # --- one planner per resource ----------------------------------------------------------------------------------

    def plan_address(self, live: dict | None) -> list[Command]:
        if live is None:
            return [["compute", "addresses", "create", self.name("address"), "--ip-version=IPV4", "--global"]]
        return []  # never recreated, whatever else changes

    def plan_policy(self, live: dict | None, files: Path) -> list[Command]:
        name = self.name("policy")
        if live is None:  # one create with every rule (the default rule, allow, stated: "there must always be" one)
            source = files / f"{name}.json"
            source.write_text(json.dumps({"description": f"Cloud Armor in front of {self.function} (deploy.sh)",
                                          "rules": policy_rules()}))
            return [["compute", "security-policies", "create", name, f"--file-name={source}", "--file-format=json"]]
        commands: list[Command] = []
        existing = {r["priority"]: r for r in live.get("rules", [])}
        for rule in armor.rules():
            command = ["compute", "security-policies", "rules"]
            target = [str(rule.priority), f"--security-policy={name}"]
            have = existing.get(rule.priority)
            if have is None:
                commands.append([*command, "create", *target, *rule.flags()])
            elif ((have.get("action") == "rate_based_ban" and rule.action != "rate_based_ban")
                  or bool(have.get("preview", False)) != bool(rule.resource().get("preview", False))):
                # "When you configure a rule with a rate-based ban action, you can't change it to a throttle action";
                # `rules update --preview` sets preview but no flag clears it. Either way: delete (without a prompt)
                # and create again.
                commands += [[*command, "delete", *target, "--quiet"], [*command, "create", *target, *rule.flags()]]
            elif not rule_is(have, rule.resource()):
                commands.append([*command, "update", *target, *rule.flags()])
        return commands

    def plan_neg(self, live: dict | None) -> list[Command]:
        if live is None:
            return [["compute", "network-endpoint-groups", "create", self.name("neg"), f"--region={self.region}",
                     "--network-endpoint-type=serverless", f"--cloud-run-service={self.function}"]]
        service = (live.get("cloudRun") or {}).get("service")
        if service != self.function:
            raise EdgeError(f"network endpoint group {self.name('neg')} serves {service!r}, not {self.function}: "
                            "a network endpoint group cannot be changed; delete it (after removing it from "
                            f"{self.name('backend')}) and deploy again")
        return []

    def plan_backend(self, live: dict | None) -> list[Command]:
        name = self.name("backend")
        neg = ["--network-endpoint-group=" + self.name("neg"), f"--network-endpoint-group-region={self.region}"]
        logging = ["--enable-logging", f"--logging-sample-rate={self.log_sample_rate:g}"]
        policy = [f"--security-policy={self.name('policy')}"]
        if live is None:
            return [["compute", "backend-services", "create", name, "--global", f"--load-balancing-scheme={SCHEME}",
                     *logging],
                    ["compute", "backend-services", "add-backend", name, "--global", *neg],
                    ["compute", "backend-services", "update", name, "--global", *policy]]
        if live.get("loadBalancingScheme") != SCHEME:
            raise EdgeError(f"backend service {name} has load balancing scheme {live.get('loadBalancingScheme')}, "
                            f"not {SCHEME}: delete it and deploy again")
        commands: list[Command] = []
        if self.name("neg") not in {name_of(b.get("group")) for b in live.get("backends", [])}:
            commands.append(["compute", "backend-services", "add-backend", name, "--global", *neg])
        log = live.get("logConfig") or {}
        changes = [] if log.get("enable") and log.get("sampleRate") == self.log_sample_rate else logging
        if name_of(live.get("securityPolicy")) != self.name("policy"):
            changes += policy
        if changes:
            commands.append(["compute", "backend-services", "update", name, "--global", *changes])
        return commands

    def plan_url_map(self, live: dict | None) -> list[Command]:
        return self.plan_pointer("url-maps", "url-map", "defaultService", "--default-service", "backend",
                                 "set-default-service", live)

    def plan_pointer(self, group: str, resource: str, field: str, flag: str, target: str, update: str,
                     live: dict | None) -> list[Command]:
        """A resource that points at one other (a URL map at its backend service, a proxy at its URL map): created
        pointing at it, pointed at it again when it points elsewhere."""
        name, wanted = self.name(resource), self.name(target)
        if live is None:
            return [["compute", group, "create", name, f"{flag}={wanted}", "--global"]]
        if name_of(live.get(field)) != wanted:
            return [["compute", group, update, name, f"{flag}={wanted}", "--global"]]
        return []

    def plan_certificate(self, live: dict | None) -> list[Command]:
        if live is None:
            return [["compute", "ssl-certificates", "create", self.name("certificate"), f"--domains={self.domain}",
                     "--global"]]
        return []  # its name carries its domain; provisioning is Google's (docs/operations.md "The domain")

    def plan_https_proxy(self, live: dict | None) -> list[Command]:
        name, url_map, certificate = self.name("https-proxy"), self.name("url-map"), self.name("certificate")
        if live is None:
            return [["compute", "target-https-proxies", "create", name, f"--url-map={url_map}",
                     f"--ssl-certificates={certificate}", "--global"]]
        changes = []
        attached = [name_of(c) for c in live.get("sslCertificates", [])]
        if attached[:1] != [certificate]:
            # The domain's certificate first (the one served without a matching SNI); the certificates already
            # attached stay, so the previous domain keeps working until an operator detaches its certificate.
            wanted = [certificate, *[c for c in attached if c != certificate]]
            changes += [f"--ssl-certificates={','.join(wanted)}", "--global-ssl-certificates"]
        if name_of(live.get("urlMap")) != url_map:
            changes += [f"--url-map={url_map}", "--global-url-map"]
        return [["compute", "target-https-proxies", "update", name, *changes, "--global"]] if changes else []

    def plan_https_rule(self, live: dict | None) -> list[Command]:
        return self.plan_forwarding_rule("https-rule", "https-proxy", "--target-https-proxy", 443, live)

    def plan_redirect_map(self, live: dict | None, files: Path) -> list[Command]:
        name = self.name("redirect-map")
        redirect = (live or {}).get("defaultUrlRedirect") or {}
        if live is not None and all(redirect.get(field) == value for field, value in REDIRECT.items()):
            return []
        source = files / f"{name}.json"  # JSON is YAML: what `url-maps import --source` reads
        # An update must carry the live fingerprint ("An up-to-date fingerprint must be provided in order to update
        # the UrlMap, otherwise the request will fail with error 412 conditionNotMet"); import sends the file's.
        fingerprint = {"fingerprint": live["fingerprint"]} if live and live.get("fingerprint") else {}
        source.write_text(json.dumps({"name": name, "defaultUrlRedirect": REDIRECT, **fingerprint}))
        return [["compute", "url-maps", "import", name, f"--source={source}", "--global", "--quiet"]]

    def plan_http_proxy(self, live: dict | None) -> list[Command]:
        return self.plan_pointer("target-http-proxies", "http-proxy", "urlMap", "--url-map", "redirect-map", "update",
                                 live)

    def plan_http_rule(self, live: dict | None) -> list[Command]:
        return self.plan_forwarding_rule("http-rule", "http-proxy", "--target-http-proxy", 80, live)

    def plan_forwarding_rule(self, resource: str, proxy: str, flag: str, port: int, live: dict | None) -> list[Command]:
        """A global forwarding rule on the reserved address: created once, only its target ever changes."""
        name, target = self.name(resource), self.name(proxy)
        if live is None:
            return [["compute", "forwarding-rules", "create", name, "--global", f"--load-balancing-scheme={SCHEME}",
                     f"--address={self.name('address')}", f"{flag}={target}", f"--ports={port}"]]
        if live.get("loadBalancingScheme") != SCHEME or live.get("portRange", "").split("-")[0] != str(port):
            raise EdgeError(f"forwarding rule {name} is not an {SCHEME} rule on port {port}: delete it and deploy "
                            "again (the address stays)")
        if name_of(live.get("target")) != target:
            return [["compute", "forwarding-rules", "set-target", name, "--global", f"{flag}={target}"]]
        return []


def policy_rules(env: Mapping[str, str] = os.environ) -> list[dict]:
    """Every rule of the Cloud Armor policy as Compute keeps it (SecurityPolicyRule), the default rule last."""
    return [r.resource() for r in armor.rules(env)] + [DEFAULT_RULE]


def rule_is(live: dict, wanted: dict) -> bool:
    """Whether a live rule is the wanted one (output-only fields such as kind aside)."""
    return all(live.get(field, False if field == "preview" else None) == value for field, value in wanted.items())


def read_live(text: str) -> dict | None:
    """A describe's JSON (gcloud prints some, such as a security policy, as a one-element list); None when empty."""
    if not text.strip():
        return None
    doc = json.loads(text)
    return doc[0] if isinstance(doc, list) else doc


def append_tiles(board: Path, tiles: Path) -> None:
    """The dashboard with the edge's tiles below its own (rows keep their height)."""
    doc, extra = json.loads(board.read_text()), json.loads(tiles.read_text())
    layout = doc["mosaicLayout"]
    bottom = max((t.get("yPos", 0) + t.get("height", 0) for t in layout["tiles"]), default=0)
    for tile in extra["tiles"]:
        layout["tiles"].append({**tile, "yPos": bottom + tile.get("yPos", 0)})
    board.write_text(json.dumps(doc, indent=1))



def plan_all(edge: Edge, live: Path, files: Path) -> list[Command]:
    """Every resource's commands, in creation order, from the descriptions in live/RESOURCE.json (empty: missing):
    '#' lines are notes (the per-license bounds, what is current); the last line is `dns IP STATUS` (IP '-' when
    the address is created now). Nothing runs before every resource was planned, so a resource that cannot be
    kept stops the deploy before any change."""
    described = {r: read_live(p.read_text()) if (p := live / f"{r}.json").exists() else None for r in RESOURCES}
    lines: list[Command] = [["#", bounds_note()]]
    for resource in RESOURCES:
        lines += edge.plan(resource, described[resource], files) or [["#", f"current: {resource} "
                                                                                 f"{edge.name(resource)}"]]
    address, certificate = described["address"] or {}, described["certificate"] or {}
    lines.append(["dns", address.get("address", "-"), (certificate.get("managed") or {}).get("status", "PROVISIONING")])
    return lines


def bounds_note() -> str:
    """One license's events per second, through Cloud Armor and by the in-process quota alone."""
    b = armor.bounds()
    return (f"per license: at most {b['edge_requests_per_minute']} requests a minute through Cloud Armor x "
            f"{b['events_per_request']} events = {b['edge_events_per_second']:g} events/s across every instance; the "
            f"in-process quota alone: {b['quota_events_per_second_per_instance']:g} events/s per instance x "
            f"{b['instances']} instances = {b['quota_events_per_second_all_instances']:g} events/s")


# --- CLI ---------------------------------------------------------------------------------------------------------

def _resources(args: argparse.Namespace) -> int:
    try:
        edge = Edge.from_env()
        armor.rules()  # every threshold checked before anything is deployed
    except ConfigError as error:
        print(f"tools.edge: {error}", file=sys.stderr)
        return 1
    for resource in RESOURCES:
        print(resource + "\t" + "\t".join(edge.describe(resource)))
    return 0


def _print_commands(produce: Callable[[], list[Command]]) -> int:
    """Print the commands produce() makes, one per line, tab-separated; 1 when it cannot."""
    try:
        lines = produce()
    except (EdgeError, ConfigError) as error:
        print(f"tools.edge: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print("\t".join(line))
    return 0


def _plan(args: argparse.Namespace) -> int:
    return _print_commands(lambda: plan_all(Edge.from_env(), Path(args.live), Path(args.files)))


def _plan_address(args: argparse.Namespace) -> int:
    """The commands that create the address (deploy.sh reserves it before ingest, which is told its IP)."""
    return _print_commands(lambda: Edge.from_env().plan("address", None, Path(".")))


def _name(args: argparse.Namespace) -> int:
    try:
        print(Edge.from_env().name(args.resource))
    except ConfigError as error:
        print(f"tools.edge: {error}", file=sys.stderr)
        return 1
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    append_tiles(Path(args.board), Path(args.tiles))
    return 0


def parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    p = argparse.ArgumentParser(prog="python -m tools.edge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    sub.add_parser("resources").set_defaults(run=_resources)
    plan = sub.add_parser("plan")
    plan.add_argument("--live", required=True, help="folder of the descriptions, RESOURCE.json (empty: missing)")
    plan.add_argument("--files", required=True, help="folder for the files a command reads (the redirect URL map)")
    plan.set_defaults(run=_plan)
    sub.add_parser("plan-address").set_defaults(run=_plan_address)
    name = sub.add_parser("name")
    name.add_argument("resource", choices=RESOURCES)
    name.set_defaults(run=_name)
    board = sub.add_parser("dashboard")
    board.add_argument("board")
    board.add_argument("tiles")
    board.set_defaults(run=_dashboard)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
