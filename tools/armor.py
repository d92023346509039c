"""The Cloud Armor rules in front of ingest (docs/security.md "Limits at the edge"): which request each rule matches,
the key it counts on, and its threshold, from the EDGE_* settings of deploy/*.env.

Cloud Armor runs the action of the highest-priority rule a request matches and evaluates no other, so each rule
owns a disjoint share of the traffic; each match is a regular expression over what Cloud Armor sees (the path, the
Authorization header), kept here once as what Cloud Armor evaluates (`expression`); devtools/armor_sim.py evaluates
the resources these rules become, as Google documents. Rate limits key on the first 128 bytes of a header, or on the
client IP.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.ingest.config import IngestConfig

KEY_BYTES = 128  # "The key value is truncated to the first 128 bytes of the header value."
INTERVAL_SECONDS = 60  # every threshold but the ban's is per minute
HEARTBEAT_PATHS = ("/__heartbeat__", "/__lbheartbeat__", "/__version__")
EVENTS_PATH = "/v1/events"
# A license key is base64url (no padding) of {"sig":{"Format":"...","Blob":"...","Rest":null},"info":"..."}: its
# first 18 bytes never change, so its first 24 characters are always these.
LICENSE_PREFIX = base64.urlsafe_b64encode(b'{"sig":{"Format":"').decode()
B64URL = "[A-Za-z0-9_-]"
LICENSE_HEADER = f"^Bearer {LICENSE_PREFIX}{B64URL}+$"
# A Google ID token is a JWT: three base64url parts joined by dots, the first a JSON header ('eyJ' is '{"').
ID_TOKEN_HEADER = f"^Bearer eyJ{B64URL}+[.]{B64URL}+[.]{B64URL}+$"
MAX_COUNT = {"throttle": 1_000_000, "rate_based_ban": 10_000}  # rateLimitThreshold.count (rate limiting overview)
# The only values Cloud Armor takes for a threshold's intervalSec (banThreshold's too), and for banDurationSec those
# from 60 (rate-limiting overview, https://cloud.google.com/armor/docs/rate-limiting-overview; the REST reference
# lists none): anything else fails at `rules create`,
# so it is refused when the settings are read, before anything is deployed.
INTERVALS = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
BAN_DURATIONS = tuple(v for v in INTERVALS if v >= 60)


@dataclass(frozen=True)
class Rule:
    """One Cloud Armor rule; `header_pattern` / `paths` None means the rule does not test it."""

    priority: int
    description: str
    action: str  # throttle | rate_based_ban
    key: str  # IP | HTTP_HEADER
    count: int  # requests per INTERVAL_SECONDS per key
    paths: tuple[str, ...] | None = None
    header_pattern: str | None = None
    key_name: str | None = None
    ban_count: int | None = None
    ban_interval: int | None = None
    ban_seconds: int | None = None

    @property
    def expression(self) -> str | None:
        """The rule's match in Cloud Armor's rules language; None matches every request (source IPs *). A header is
        read only behind `has()`: reading an absent one "returns an error" (rules language reference)."""
        paths = " || ".join(f"request.path == '{p}'" for p in self.paths or ())
        if not self.header_pattern:
            return paths or None
        if len(self.paths or ()) > 1:
            raise ValueError("a header rule tests one path (`&&` binds tighter than `||`)")
        header = "request.headers['authorization']"
        matches = f"{header}.matches('{self.header_pattern}')"
        return " && ".join([*([paths] if paths else []), f"has({header})", matches])

    def resource(self) -> dict:
        """The rule as Compute keeps it (SecurityPolicyRule)."""
        match = ({"expr": {"expression": self.expression}} if self.expression else
                 {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}})
        options: dict = {"conformAction": "allow", "exceedAction": "deny(429)", "enforceOnKey": self.key,
                         "rateLimitThreshold": {"count": self.count, "intervalSec": INTERVAL_SECONDS}}
        if self.key_name:
            options["enforceOnKeyName"] = self.key_name
        if self.action == "rate_based_ban":
            options["banThreshold"] = {"count": self.ban_count, "intervalSec": self.ban_interval}
            options["banDurationSec"] = self.ban_seconds
        return {"priority": self.priority, "description": self.description, "action": self.action,
                "preview": False, "match": match, "rateLimitOptions": options}

    def flags(self) -> list[str]:
        """The `gcloud compute security-policies rules create|update` flags that make this rule."""
        match = [f"--expression={self.expression}"] if self.expression else ["--src-ip-ranges=*"]
        flags = [f"--description={self.description}", *match, f"--action={self.action.replace('_', '-')}",
                 f"--rate-limit-threshold-count={self.count}",
                 f"--rate-limit-threshold-interval-sec={INTERVAL_SECONDS}", "--conform-action=allow",
                 "--exceed-action=deny-429", f"--enforce-on-key={self.key.lower().replace('_', '-')}"]
        if self.key_name:
            flags.append(f"--enforce-on-key-name={self.key_name}")
        if self.action == "rate_based_ban":
            flags += [f"--ban-threshold-count={self.ban_count}", f"--ban-threshold-interval-sec={self.ban_interval}",
                      f"--ban-duration-sec={self.ban_seconds}"]
        return flags


def setting(env: Mapping[str, str], name: str, minimum: int = 1, maximum: int | None = None,
            allowed: tuple[int, ...] | None = None) -> int:
    """An EDGE_* whole number from the settings file (deploy/*.env owns every value), one of `allowed` if given."""
    raw = env.get(name, "").strip()
    if not raw:
        raise ConfigError(f"{name} is missing (deploy/*.env): the edge needs every EDGE_* setting")
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))} (the values Cloud Armor takes), "
                          f"got {value}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be from {minimum} to {maximum}, got {value}" if maximum else
                          f"{name} must be >= {minimum}, got {value}")
    return value


def rules(env: Mapping[str, str] = os.environ) -> list[Rule]:
    """The policy's rules, highest priority first (the default rule, allow, stays last)."""
    throttle = MAX_COUNT["throttle"]
    return [
        Rule(1000, "heartbeats: throttled per client IP", "throttle", "IP",
             setting(env, "EDGE_HEARTBEAT_REQUESTS_PER_MINUTE", maximum=throttle), paths=HEARTBEAT_PATHS),
        Rule(2000, "license keys: throttled per license (Authorization)", "throttle", "HTTP_HEADER",
             setting(env, "EDGE_LICENSE_REQUESTS_PER_MINUTE", maximum=throttle), paths=(EVENTS_PATH,),
             header_pattern=LICENSE_HEADER, key_name="Authorization"),
        Rule(3000, "ID tokens of managed services: throttled per client IP", "throttle", "IP",
             setting(env, "EDGE_SERVICE_REQUESTS_PER_MINUTE", maximum=throttle), paths=(EVENTS_PATH,),
             header_pattern=ID_TOKEN_HEADER),
        Rule(3500, "/v1/events, license in the body: throttled per IP, no ban",
             "throttle", "IP", setting(env, "EDGE_EVENTS_IP_REQUESTS_PER_MINUTE", maximum=throttle),
             paths=(EVENTS_PATH,)),
        banned(env),
    ]


def banned(env: Mapping[str, str]) -> Rule:
    """Rule 4000, everything else: throttled per client IP, then banned. Its ban threshold lies above what the
    throttle lets through in the ban's interval, so a client at the throttle's rate is never banned under either
    reading of what a ban counts (only the requests over the rate, per the REST reference; all of them, per the
    rate-limiting overview)."""
    count = setting(env, "EDGE_IP_REQUESTS_PER_MINUTE", maximum=MAX_COUNT["rate_based_ban"])
    rule = Rule(4000, "everything else: throttled per client IP, then banned", "rate_based_ban", "IP", count,
                ban_count=setting(env, "EDGE_BAN_THRESHOLD_REQUESTS", maximum=MAX_COUNT["rate_based_ban"]),
                ban_interval=setting(env, "EDGE_BAN_INTERVAL_SECONDS", allowed=INTERVALS),
                ban_seconds=setting(env, "EDGE_BAN_DURATION_SECONDS", allowed=BAN_DURATIONS))
    allowed = count * rule.ban_interval // INTERVAL_SECONDS
    if rule.ban_count <= allowed:
        raise ConfigError(f"EDGE_BAN_THRESHOLD_REQUESTS must be above EDGE_IP_REQUESTS_PER_MINUTE x "
                          f"EDGE_BAN_INTERVAL_SECONDS / 60 = {allowed}, got {rule.ban_count}: a client at the "
                          "throttle's rate would be banned where a ban counts every request")
    return rule


def bounds(env: Mapping[str, str] = os.environ) -> dict[str, float]:
    """Events per second one license may send: through Cloud Armor (all instances together) and by the in-process
    quota (per function instance, and so across INGEST_MAX_INSTANCES of them)."""
    declared = {s.env: s for s in IngestConfig.declared()}
    quota = float(declared["QUOTA_EVENTS_PER_SECOND"].value(env))
    events_per_request = int(declared["MAX_EVENTS_PER_REQUEST"].value(env))
    instances = setting(env, "INGEST_MAX_INSTANCES")
    license_rule = next(r for r in rules(env) if r.key == "HTTP_HEADER")
    return {"edge_events_per_second": license_rule.count * events_per_request / INTERVAL_SECONDS,
            "quota_events_per_second_per_instance": quota,
            "quota_events_per_second_all_instances": quota * instances,
            "instances": instances, "events_per_request": events_per_request,
            "edge_requests_per_minute": license_rule.count}
