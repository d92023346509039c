"""The policy tools.armor writes, under traffic mixes of real callers, evaluated as Google documents Cloud Armor
(devtools/armor_sim.py), under both readings of what a ban counts. Virtual time: thirty minutes in milliseconds."""

from __future__ import annotations

from collections import Counter

import pytest

from devtools.armor_sim import ALL_REQUESTS, OVER_RATE, Armor, Request, run
from tools import armor
from tools import edge as edge_resources
from tools.settings import settings_file

NAT = "203.0.113.10"  # one company's shared egress address
MINUTES = 30
SETTINGS = settings_file("prod")
POLICY = edge_resources.policy_rules(SETTINGS)
LICENSE_RULE = next(r for r in armor.rules(SETTINGS) if r.key == "HTTP_HEADER")


def license_header(who: str) -> str:
    """A license-shaped Authorization header; `who` within its first 128 bytes, as a real license's signature is."""
    return f"Bearer {armor.LICENSE_PREFIX}{who}" + "A" * 200


@pytest.fixture(params=[OVER_RATE, ALL_REQUESTS])
def edge(request: pytest.FixtureRequest) -> Armor:
    return Armor(POLICY, request.param)


def exporting(instances: int, ip: str = NAT, licensed: bool = False) -> list[Request]:
    """`instances` instances behind one address, each exporting once a minute for MINUTES (each with a license of
    its own in the header when licensed, else none: the license in the body)."""
    return [Request(minute * 60 + n * 60 / instances, ip, authorization=license_header(f"n{n}") if licensed else None)
            for minute in range(MINUTES) for n in range(instances)]


def draining(per_second: float, seconds: float, ip: str = NAT, authorization: str | None = None,
             start: float = 60.0) -> list[Request]:
    """One instance sending its backlog at `per_second` for `seconds`."""
    return [Request(start + i / per_second, ip, authorization=authorization)
            for i in range(int(per_second * seconds))]


def statuses(results: list, ip: str | None = None) -> Counter:
    """Verdicts by status, of every request or of one address's."""
    return Counter(status for request, status in results if ip is None or request.ip == ip)


def test_forty_instances_behind_one_nat_with_the_license_in_the_body_and_one_draining_are_never_refused(edge):
    """Sourcegraph's exporter puts its license in the body: Cloud Armor sees no Authorization header. Forty
    instances export once a minute; one drains a backlog at 3 requests a second for ten minutes."""
    neighbours, drain = exporting(40), draining(3, 600)
    results = run(edge, neighbours + drain)
    assert statuses(results) == {200: len(neighbours) + len(drain)}  # neither throttled nor banned


def test_the_same_with_the_license_in_the_header(edge):
    """Each license has its own bucket (EDGE_LICENSE_REQUESTS_PER_MINUTE): the drainer is held to it, its
    neighbours are untouched and nobody is banned."""
    neighbours, drainer = exporting(40, licensed=True), license_header("drainer")
    drain = draining(3, 600, authorization=drainer)
    results = run(edge, neighbours + drain)
    drained = [status for request, status in results if request.authorization == drainer]
    assert Counter(s for r, s in results if r.authorization != drainer) == {200: len(neighbours)}
    assert drained.count(200) >= LICENSE_RULE.count * 10  # all its bucket allows over its ten minutes
    assert edge.banned_until == {}


def test_a_flooder_with_junk_bodies_is_held_to_its_address_s_budget_and_its_neighbours_are_served(edge):
    flood = draining(50, 600, ip="198.51.100.66", start=0.0)  # 50 a second without a license header
    neighbours = exporting(40)
    results = run(edge, flood + neighbours)
    assert statuses(results, NAT) == {200: len(neighbours)}
    let_through = sum(status == 200 for request, status in results if request.ip == "198.51.100.66")
    assert let_through <= 600 * 10 + 600  # the per-address throttle: 600 a minute


def test_a_stolen_license_used_from_fifty_addresses_shares_the_license_s_one_bucket(edge):
    stolen = [Request(i * 0.1, f"192.0.2.{i % 50}", authorization=license_header("stolen"))
              for i in range(6000)]  # 10 a second for 10 minutes
    results = run(edge, stolen)
    assert statuses(results)[200] <= LICENSE_RULE.count * 11  # one license's bucket, wherever it is sent from


def test_uptime_checks_are_served(edge):
    checks = [Request(minute * 60 + n, f"35.191.0.{n}", path=path) for minute in range(MINUTES) for n in range(6)
              for path in ("/__heartbeat__", "/__lbheartbeat__")]
    assert statuses(run(edge, checks)) == {200: len(checks)}


def test_a_scanner_of_other_paths_is_banned_and_a_client_at_the_throttle_s_rate_never_is(edge):
    scanner = [Request(i * 0.1, "198.51.100.99", path=f"/wp-login.php?{i}") for i in range(6000)]
    steady = [Request(i * 1.0, "198.51.100.7", path="/robots.txt") for i in range(MINUTES * 60)]  # 60 a minute
    results = run(edge, scanner + steady)
    assert edge.banned_until.keys() == {(4000, ("IP", "198.51.100.99"))}
    assert statuses(results, "198.51.100.7") == {200: len(steady)}
