"""Cloud Armor's evaluation of a security policy, as Google documents it, from the policy's own JSON.

The input is the rules as Compute keeps them (`SecurityPolicyRule` resources: what `tools.edge` writes into the
policy deploy.sh creates), not Python objects that claim to mean the same. Each rule is read as Cloud Armor reads it:
- The highest-priority rule that matches acts; no other is evaluated ("Create security policy rules",
  https://cloud.google.com/armor/docs/create-security-policy-rules).
- A match is `srcIpRanges: ["*"]` (every request) or an expression of the rules language. The expressions read here
  are the forms tools.armor writes: alternatives joined by `||`, each a conjunction (`&&` binds tighter) of
  `request.path == '…'` (the path without the query string: `request.query` is apart), `has(request.headers['name'])`
  and `request.headers['name'].matches('RE2')` (header names in lower case; CEL's `matches` is a partial match;
  Python's `re` stands in for RE2 on these patterns). Reading an absent header "returns an error", so a `matches`
  must follow a `has()` of its header ("Custom rules language reference",
  https://cloud.google.com/armor/docs/rules-language-reference). Any other form raises: the evaluator never guesses.
- A rule in `preview` is not enforced ("If set to true, the specified action is not enforced"): it is skipped.
- A throttle lets a key through up to `rateLimitThreshold.count` requests per `intervalSec` and answers the
  exceed action (`deny(STATUS)`) beyond. The key (`enforceOnKey`) is the client IP, a header's first 128 bytes
  (`HTTP_HEADER`; the key is `ALL` when the header is absent) or `ALL` (SecurityPolicyRuleRateLimitOptions,
  https://cloud.google.com/compute/docs/reference/rest/v1/securityPolicies). How the interval is windowed is not
  documented: here it slides (every request of the last interval counts).
- A rate-based ban bans a key once its count within `banThreshold.intervalSec` exceeds `banThreshold.count`, and
  answers the exceed action meanwhile, "for an additional number of seconds [banDurationSec] after the interval_sec
  period elapses" (rate-limiting overview): here until the end of the interval that began with the oldest request
  counted, plus banDurationSec. Without a banThreshold, the first request over the rate bans. Requests refused
  during a ban are not counted again, and a new ban's count starts empty: the docs are silent on both. Rate limits
  are "approximate" and counted in each region apart: this evaluator is exact and has one region, so its bounds
  are tighter than Google promises. What a ban counts, Google says two ways: the REST
  reference, "the number of requests that exceed the 'rate_limit_threshold'"; the rate-limiting overview
  (https://cloud.google.com/armor/docs/rate-limiting-overview), "the total requests from the client, consisting of
  all incoming requests before throttling". `Armor(rules, ban_counts=...)` takes either: OVER_RATE or ALL_REQUESTS.
- `allow` and `deny(STATUS)` rules act at once; a rule's deny takes 403, 404 or 502, an exceed action 403, 404, 429
  or 502 (REST SecurityPolicyRule.action, SecurityPolicyRuleRateLimitOptions.exceedAction).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tools.armor import KEY_BYTES

OVER_RATE, ALL_REQUESTS = "over_rate", "all_requests"
PATH_TERM = re.compile(r"^request\.path == '([^']*)'$")
HAS_TERM = re.compile(r"^has\(request\.headers\['([a-z0-9-]+)'\]\)$")
HEADER_TERM = re.compile(r"^request\.headers\['([a-z0-9-]+)'\]\.matches\('([^']*)'\)$")
DENY = re.compile(r"^deny\((\d{3})\)$")
RULE_DENIES, EXCEED_DENIES = {403, 404, 502}, {403, 404, 429, 502}
ALL_KEY = ("ALL",)  # the key of every request when a rule keys on ALL, or on a header the request lacks


@dataclass(frozen=True)
class Request:
    """One request as Cloud Armor sees it: when (seconds), from which client IP, its path and headers."""

    at: float
    ip: str
    path: str = "/v1/events"
    authorization: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case

    def header(self, name: str) -> str | None:
        """The header's value, None when the request has none."""
        if name == "authorization" and self.authorization is not None:
            return self.authorization
        return self.headers.get(name)


@dataclass(frozen=True)
class Evaluated:
    """One rule of the policy, ready to evaluate."""

    priority: int
    action: str  # allow | deny(STATUS) | throttle | rate_based_ban
    match: Callable[[Request], bool]
    key: Callable[[Request], tuple] | None = None
    count: int = 0
    interval: float = 0.0
    exceed_status: int = 429
    ban_count: int | None = None  # None: no banThreshold
    ban_interval: float = 0.0
    ban_seconds: float = 0.0


def evaluated(resource: Mapping) -> Evaluated:
    """A SecurityPolicyRule resource as Cloud Armor evaluates it; ValueError for what this evaluator cannot read."""
    action, priority = resource["action"], int(resource["priority"])
    match = _match(resource["match"])
    if action == "allow":
        return Evaluated(priority, action, match)
    if deny := DENY.match(action):
        if int(deny.group(1)) not in RULE_DENIES:
            raise ValueError(f"rule {priority}: {action} is not a status a rule can deny with")
        return Evaluated(priority, action, match)
    if action not in ("throttle", "rate_based_ban"):
        raise ValueError(f"rule {priority}: action {action!r} is not evaluated here")
    options = resource["rateLimitOptions"]
    if options.get("conformAction", "allow") != "allow":
        raise ValueError(f"rule {priority}: conformAction must be allow (the only valid option)")
    exceed = DENY.match(options["exceedAction"])
    if not exceed or int(exceed.group(1)) not in EXCEED_DENIES:
        raise ValueError(f"rule {priority}: exceedAction {options['exceedAction']!r} is not evaluated here")
    threshold = options["rateLimitThreshold"]
    ban = options.get("banThreshold") if action == "rate_based_ban" else None
    return Evaluated(priority, action, match, _key(priority, options), int(threshold["count"]),
                     float(threshold["intervalSec"]), int(exceed.group(1)), int(ban["count"]) if ban else None,
                     float(ban["intervalSec"]) if ban else 0.0, float(options.get("banDurationSec", 0)))


def _match(match: Mapping) -> Callable[[Request], bool]:
    if match.get("config", {}).get("srcIpRanges") == ["*"]:
        return lambda request: True
    expression = match.get("expr", {}).get("expression")
    if not expression:
        raise ValueError(f"match {dict(match)!r} is not evaluated here")
    alternatives = [_conjunction(alternative) for alternative in expression.split(" || ")]
    return lambda request: any(all(term(request) for term in terms) for terms in alternatives)


def _conjunction(alternative: str) -> list[Callable[[Request], bool]]:
    """The terms of `a && b && …`, in order; a header's `matches` only behind a `has()` of that header."""
    terms, guarded = [], set()
    for term in (t.strip() for t in alternative.split(" && ")):
        if path := PATH_TERM.match(term):
            wanted = path.group(1)
            terms.append(lambda request, wanted=wanted: request.path.partition("?")[0] == wanted)
        elif has := HAS_TERM.match(term):
            guarded.add(name := has.group(1))
            terms.append(lambda request, name=name: request.header(name) is not None)
        elif header := HEADER_TERM.match(term):
            name, pattern = header.group(1), re.compile(header.group(2))
            if name not in guarded:
                raise ValueError(f"{term!r} errors on a request without the header: guard it with has() first")
            terms.append(lambda request, name=name, pattern=pattern: pattern.search(request.header(name)) is not None)
        else:
            raise ValueError(f"expression {term!r} is not evaluated here")
    return terms


def _key(priority: int, options: Mapping) -> Callable[[Request], tuple]:
    kind = options.get("enforceOnKey", "ALL")
    if kind == "IP":
        return lambda request: ("IP", request.ip)
    if kind == "ALL":
        return lambda request: ALL_KEY
    if kind == "HTTP_HEADER":
        name = options["enforceOnKeyName"].lower()
        return lambda request: (("HTTP_HEADER", value.encode()[:KEY_BYTES])
                                if (value := request.header(name)) is not None else ALL_KEY)
    raise ValueError(f"rule {priority}: enforceOnKey {kind!r} is not evaluated here")


class Armor:
    """The policy's verdicts, request by request, in the order of their times."""

    def __init__(self, rules: list[Mapping], ban_counts: str) -> None:
        if ban_counts not in (OVER_RATE, ALL_REQUESTS):
            raise ValueError(f"ban_counts must be {OVER_RATE} or {ALL_REQUESTS}")
        self.rules = sorted((evaluated(r) for r in rules if not r.get("preview")), key=lambda r: r.priority)
        self.ban_counts = ban_counts
        self._allowed: dict[tuple, deque] = defaultdict(deque)  # (priority, key) -> times let through
        self._counted: dict[tuple, deque] = defaultdict(deque)  # (priority, key) -> times the ban counts
        self.banned_until: dict[tuple, float] = {}  # (priority, key) -> when the ban ends

    def rule_for(self, request: Request) -> Evaluated:
        """The rule that acts: the highest-priority one that matches (a policy always has a default rule)."""
        return next(r for r in self.rules if r.match(request))

    def status(self, request: Request) -> int:
        """200 when the policy lets the request through, else the status of the rule's deny or exceed action."""
        return self.decide(request)[0]

    def decide(self, request: Request) -> tuple[int, int]:
        """(status as in status(), the priority of the rule that acted): one evaluation of the request."""
        rule = self.rule_for(request)
        return self._status(rule, request), rule.priority

    def _status(self, rule: Evaluated, request: Request) -> int:
        if rule.action == "allow":
            return 200
        if rule.key is None:
            return int(DENY.match(rule.action).group(1))
        bucket = (rule.priority, rule.key(request))
        now = request.at
        if self.banned_until.get(bucket, float("-inf")) > now:
            return rule.exceed_status
        allowed = _recent(self._allowed[bucket], now, rule.interval)
        over = len(allowed) >= rule.count
        if rule.action == "rate_based_ban" and rule.ban_count is None and over:
            self.banned_until[bucket] = now + rule.ban_seconds
            return rule.exceed_status
        if rule.action == "rate_based_ban" and (over or self.ban_counts == ALL_REQUESTS):
            counted = _recent(self._counted[bucket], now, rule.ban_interval)
            counted.append(now)
            if len(counted) > rule.ban_count:
                self.banned_until[bucket] = counted[0] + rule.ban_interval + rule.ban_seconds
                counted.clear()
                return rule.exceed_status
        if over:
            return rule.exceed_status
        allowed.append(now)
        return 200


def _recent(times: deque, now: float, interval: float) -> deque:
    """The times within the last `interval` seconds (older ones dropped)."""
    while times and times[0] <= now - interval:
        times.popleft()
    return times


def run(armor: Armor, requests: list[Request]) -> list[tuple[Request, int]]:
    """Each request with its verdict, in time order."""
    return [(request, armor.status(request)) for request in sorted(requests, key=lambda r: r.at)]
