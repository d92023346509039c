"""Cloud Armor security policy rules, checked as Compute documents them (SOURCES.md, "Cloud Armor rules")."""

from __future__ import annotations

import re

from tests.deploy.standin.web import invalid

ACTIONS = ("allow", "deny(403)", "deny(404)", "deny(502)", "throttle", "rate_based_ban", "redirect")
RATE_ACTIONS = ("throttle", "rate_based_ban")
EXCEED_ACTIONS = ("deny(403)", "deny(404)", "deny(429)", "deny(502)", "redirect")
KEYS = ("ALL", "IP", "HTTP_HEADER", "XFF_IP", "HTTP_COOKIE", "HTTP_PATH", "SNI", "REGION_CODE", "TLS_JA3_FINGERPRINT",
        "USER_IP", "TLS_JA4_FINGERPRINT")
NAMED_KEYS = ("HTTP_HEADER", "HTTP_COOKIE")
MAX_COUNT = {"throttle": 1_000_000, "rate_based_ban": 10_000}
MAX_PRIORITY = 2147483647
DESCRIPTION_CHARS = 64
SUBEXPRESSIONS = 5
OPERATOR = re.compile(r"&&|\|\|")
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def subexpressions(expression: str) -> int:
    """How many subexpressions && and || join (operators inside string literals do not count)."""
    return len(OPERATOR.findall(QUOTED.sub("''", expression))) + 1


def check_policy_rule(rule: dict, current: dict | None) -> None:
    """Refuse (400) a rule Compute would refuse; current is the rule it replaces, if any."""
    priority = rule.get("priority")
    if not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
        raise invalid(f"Invalid value for field 'priority': '{priority}'.")
    if len(rule.get("description", "")) > DESCRIPTION_CHARS:
        raise invalid(f"Invalid value for field 'description': longer than {DESCRIPTION_CHARS} characters.")
    action = rule.get("action")
    if action not in ACTIONS:
        raise invalid(f"Invalid value for field 'action': '{action}'.")
    if current is not None and current.get("action") == "rate_based_ban" and action != "rate_based_ban":
        raise invalid("A rule with a rate_based_ban action cannot be changed to another action.")
    check_match(rule.get("match") or {})
    options = rule.get("rateLimitOptions")
    if action not in RATE_ACTIONS:
        if options:
            raise invalid("rateLimitOptions can only be specified for throttle and rate_based_ban rules.")
        return
    if not options:
        raise invalid(f"A {action} rule needs rateLimitOptions.")
    check_rate_limit(action, options)


def check_match(match: dict) -> None:
    """An expression of at most five subexpressions, or source IP ranges (SRC_IPS_V1)."""
    expression = (match.get("expr") or {}).get("expression", "")
    if expression:
        if subexpressions(expression) > SUBEXPRESSIONS:
            raise invalid(f"The expression has more than {SUBEXPRESSIONS} subexpressions.")
        return
    if match.get("versionedExpr") != "SRC_IPS_V1" or not (match.get("config") or {}).get("srcIpRanges"):
        raise invalid("A rule matches an expression or source IP ranges (versionedExpr SRC_IPS_V1).")


def check_rate_limit(action: str, options: dict) -> None:
    """conform allow, exceed deny(STATUS) or redirect, a threshold in range, a key (named where it must be)."""
    if options.get("conformAction") != "allow":
        raise invalid("rateLimitOptions.conformAction must be allow.")
    if options.get("exceedAction") not in EXCEED_ACTIONS:
        raise invalid(f"Invalid value for field 'rateLimitOptions.exceedAction': '{options.get('exceedAction')}'.")
    threshold = options.get("rateLimitThreshold") or {}
    count, interval = threshold.get("count"), threshold.get("intervalSec")
    if not isinstance(count, int) or not 1 <= count <= MAX_COUNT[action] or not isinstance(interval, int) \
            or interval <= 0:
        raise invalid(f"rateLimitThreshold of a {action} rule: count from 1 to {MAX_COUNT[action]} over a positive "
                      f"intervalSec, got {threshold}.")
    key = options.get("enforceOnKey", "ALL")
    if key not in KEYS:
        raise invalid(f"Invalid value for field 'rateLimitOptions.enforceOnKey': '{key}'.")
    if (key in NAMED_KEYS) != bool(options.get("enforceOnKeyName")):
        raise invalid("enforceOnKeyName is required for, and only for, HTTP_HEADER and HTTP_COOKIE keys.")
    ban = [f for f in ("banThreshold", "banDurationSec") if f in options]
    if ban and action != "rate_based_ban":
        raise invalid(f"{', '.join(ban)} can only be specified if the action for the rule is rate_based_ban.")
