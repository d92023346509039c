"""Cloud Armor's evaluation of the policy tools.armor writes, as Google documents it, over requests in virtual time.

- The highest-priority rule that matches acts; no other is evaluated ("Create security policy rules").
- A throttle lets a key through up to `count` requests per `intervalSec` and answers the rule's exceed action
  (429) beyond; the key is the client IP, or a header's first 128 bytes (ALL when the header is absent:
  `SecurityPolicyRuleRateLimitOptions`, rate-limiting overview). How the interval is windowed is not documented:
  here it slides (every request of the last interval counts).
- A rate-based ban bans a key for `banDurationSec` once its count within `banThreshold.intervalSec` exceeds
  `banThreshold.count`, and answers 429 meanwhile. What it counts, Google says two ways: the REST reference, "the
  number of requests that exceed the 'rate_limit_threshold'"; the rate-limiting overview, "the total requests from
  the client, consisting of all incoming requests before throttling". `Armor(rules, ban_counts=...)` takes either:
  OVER_RATE or ALL_REQUESTS.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from tools.armor import INTERVAL_SECONDS, Rule, rule_for

OVER_RATE, ALL_REQUESTS = "over_rate", "all_requests"


@dataclass(frozen=True)
class Request:
    """One request as Cloud Armor sees it: when, from which client IP, the path and the Authorization header."""

    at: float
    ip: str
    path: str = "/v1/events"
    authorization: str | None = None


class Armor:
    """The policy's verdicts, request by request, in the order of their times."""

    def __init__(self, rules: list[Rule], ban_counts: str) -> None:
        if ban_counts not in (OVER_RATE, ALL_REQUESTS):
            raise ValueError(f"ban_counts must be {OVER_RATE} or {ALL_REQUESTS}")
        self.rules, self.ban_counts = rules, ban_counts
        self._allowed: dict[tuple, deque] = defaultdict(deque)  # (priority, key) -> times let through
        self._counted: dict[tuple, deque] = defaultdict(deque)  # (priority, key) -> times the ban counts
        self._banned_until: dict[tuple, float] = {}

    def status(self, request: Request) -> int:
        """200 when the policy lets the request through, 429 when it throttles or bans it."""
        rule = rule_for(self.rules, request.path, request.authorization)
        bucket = (rule.priority, rule.key_of(request.ip, request.authorization))
        now = request.at
        if self._banned_until.get(bucket, float("-inf")) > now:
            return 429
        allowed = _recent(self._allowed[bucket], now, INTERVAL_SECONDS)
        over = len(allowed) >= rule.count
        if rule.action == "rate_based_ban" and (over or self.ban_counts == ALL_REQUESTS):
            counted = _recent(self._counted[bucket], now, rule.ban_interval)
            counted.append(now)
            if len(counted) > rule.ban_count:
                self._banned_until[bucket] = now + rule.ban_seconds
                counted.clear()
                return 429
        if over:
            return 429
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
