"""Traffic mixes of real callers through the local edge (devtools/load_balancer.py: Cloud Armor evaluated from the
policy's own JSON, X-Forwarded-For appended as the load balancer does) and the real ingest function, under both
documented readings of what a ban counts; the events land in BigQuery.

Each caller is its own 127.0.0.x source address (the edge reads the address off the connection). The edge's clock
is the mix's: requests go out one by one in the order of their times, so minutes of traffic take seconds and the
verdicts do not depend on how busy the machine is.
"""

from __future__ import annotations

import http.client
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest

from devtools.armor_sim import ALL_REQUESTS, OVER_RATE
from devtools.functions import start_function
from devtools.load_balancer import LOCAL_ADDRESS, LoadBalancer
from tests.helpers import make_body, make_event
from tests.integration.rows import flush_request_log, request_rows, wait_rows
from tools import armor
from tools.edge import DEFAULT_RULE, policy_rules
from tools.settings import settings_file

pytestmark = pytest.mark.integration
EDGE_ADDRESS = LOCAL_ADDRESS  # the load balancer's reserved address (what deploy.sh passes as EDGE_ADDRESS)
NAT = "127.0.0.10"  # one company's shared egress address
SETTINGS = settings_file("prod")
LICENSE_PER_MINUTE = int(SETTINGS["EDGE_LICENSE_REQUESTS_PER_MINUTE"])
EVENTS_IP_PER_MINUTE = int(SETTINGS["EDGE_EVENTS_IP_REQUESTS_PER_MINUTE"])
BANNING = {r.priority for r in armor.rules(SETTINGS) if r.action == "rate_based_ban"}
PER_CLIENT = 5  # REQUEST_LOG_REFUSED_PER_CLIENT of the edge's ingest
LOG_WINDOW_S = 5


@dataclass
class Clock:
    """The mix's time, in seconds: the edge reads it as each request arrives."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Call:
    """One request of a mix: when, from which address, with what."""

    at: float
    ip: str
    path: str = "/v1/events"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    ids: tuple[str, ...] = ()  # the events it carries
    who: str = ""  # the caller's role in the mix


@dataclass
class Sent:
    """The answers of a mix, call by call."""

    answers: list[tuple[Call, int, bytes]] = field(default_factory=list)

    def statuses(self, who: str | None = None) -> Counter:
        return Counter(status for call, status, _ in self.answers if who is None or call.who == who)

    def ids(self, who: str) -> list[str]:
        """Event ids the function answered as succeeded, of one role."""
        return [i for call, status, body in self.answers if call.who == who and status == 200
                for i in orjson.loads(body)["succeededEvents"]]


class Edge:
    """A local load balancer in front of the edge's ingest, on the mix's clock."""

    def __init__(self, upstream: str, rules: list[dict], ban_counts: str, address: str | None = EDGE_ADDRESS) -> None:
        self.clock = Clock()
        self.balancer = LoadBalancer(upstream, rules=rules, address=address, ban_counts=ban_counts,
                                     clock=self.clock).start()
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def send(self, calls: list[Call]) -> Sent:
        sent = Sent()
        for call in sorted(calls, key=lambda c: c.at):
            self.clock.now = call.at
            status, body = self._post(call)
            sent.answers.append((call, status, body))
        return sent

    def _post(self, call: Call) -> tuple[int, bytes]:
        conn = self._connections.get(call.ip)
        if conn is None:
            conn = self._connections[call.ip] = http.client.HTTPConnection(
                "127.0.0.1", self.balancer.port, timeout=60, source_address=(call.ip, 0))
        method = "POST" if call.body else "GET"
        conn.request(method, call.path, body=call.body or None, headers=dict(call.headers))
        resp = conn.getresponse()
        return resp.status, resp.read()

    def stop(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self.balancer.stop()


@pytest.fixture(scope="module")
def upstream(pipeline) -> Iterator:
    """The pipeline's ingest as deployed behind the edge: it knows the edge's address."""
    server = start_function("ingest", {**pipeline.env, "EDGE_ADDRESS": EDGE_ADDRESS})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def log_upstream(pipeline) -> Iterator:
    """Another such ingest, alone in its request log's windows (5 s) for the forged-address test."""
    server = start_function("ingest", {**pipeline.env, "EDGE_ADDRESS": EDGE_ADDRESS,
                                       "REQUEST_LOG_REFUSED_PER_CLIENT": str(PER_CLIENT),
                                       "REQUEST_LOG_WINDOW_SECONDS": str(LOG_WINDOW_S)})
    yield server
    server.stop()


@pytest.fixture
def edge(upstream) -> Iterator[Edge]:
    """The edge with the policy deploy.sh creates for prod. The mixes below never reach the rule that bans (each
    test asserts it), so what a ban counts cannot change their verdicts; the reading set is the stricter one, and
    the ban itself is tested under both."""
    running = Edge(upstream.url, policy_rules(SETTINGS), ALL_REQUESTS)
    yield running
    assert not {priority for priority, _ in running.balancer.verdicts} & BANNING
    running.stop()


def batch(license_key: str, instance: str, *, in_header: bool, at: float, ip: str, who: str) -> Call:
    """One event from a licensed instance, its license in the body (as Sourcegraph's exporter sends it) or in
    the Authorization header."""
    event = make_event()
    body = make_body([event], instance)
    headers = [("Content-Type", "application/json")]
    if in_header:
        headers.append(("Authorization", f"Bearer {license_key}"))
    else:
        body["metadata"]["identifier"]["licensedInstance"]["licenseKey"] = license_key
    return Call(at, ip, body=orjson.dumps(body), headers=tuple(headers), ids=(event["id"],), who=who)


def neighbours(pipeline, count: int, minutes: int, *, in_header: bool = False) -> list[Call]:
    """`count` instances behind NAT, each with its own license, exporting once a minute."""
    keys = [pipeline.issue_license() for _ in range(count)]
    tag = uuid.uuid4().hex[:6]
    return [batch(keys[n], f"nat-{tag}-{n}", in_header=in_header, at=minute * 60 + n * 60 / count, ip=NAT,
                  who="neighbour") for minute in range(minutes) for n in range(count)]


def drain(license_key: str, per_second: float, seconds: float, *, in_header: bool = False, ip: str = NAT,
          start: float = 60.0) -> list[Call]:
    """One instance sending its backlog at `per_second` for `seconds`."""
    instance = f"drainer-{uuid.uuid4().hex[:6]}"
    return [batch(license_key, instance, in_header=in_header, at=start + i / per_second, ip=ip, who="drainer")
            for i in range(int(per_second * seconds))]


def landed(pipeline, sent: Sent, who: str) -> int:
    """How many of one role's accepted events are in `events`."""
    ids = sent.ids(who)
    return len(wait_rows(pipeline, "events", ids, len(ids), timeout=120))


def test_forty_instances_behind_one_nat_with_the_license_in_the_body_and_one_draining(pipeline, edge):
    """Sourcegraph's exporter puts its license in the body, which Cloud Armor cannot read: forty instances behind
    one address export once a minute for six minutes, one of them drains a backlog at 3 requests a second for five
    (past the first minute the throttle's count is steady: the thirty-minute mixes run in virtual time alone,
    tests/unit/tools/test_armor_traffic.py). Nobody is throttled or banned, every event is accepted and lands."""
    mix = neighbours(pipeline, 40, 6) + drain(pipeline.issue_license(), 3, 300)
    sent = edge.send(mix)
    assert sent.statuses() == {200: len(mix)}
    assert edge.balancer.verdicts.keys() == {(3500, 200)}  # all of it through the per-IP rule without a ban
    assert landed(pipeline, sent, "neighbour") + landed(pipeline, sent, "drainer") == len(mix)


def test_the_same_with_the_license_in_the_header(pipeline, edge):
    """Each license has its own bucket: the drainer is held to EDGE_LICENSE_REQUESTS_PER_MINUTE (429 from the edge,
    which its exporter retries), its neighbours are untouched, nobody is banned."""
    mix = neighbours(pipeline, 40, 6, in_header=True) + drain(pipeline.issue_license(), 3, 300, in_header=True)
    sent = edge.send(mix)
    assert sent.statuses("neighbour") == {200: 40 * 6}
    drained = sent.statuses("drainer")
    assert drained.keys() == {200, 429} and drained[200] >= LICENSE_PER_MINUTE * 5
    assert edge.balancer.armor.banned_until == {}
    assert landed(pipeline, sent, "neighbour") == 40 * 6 and landed(pipeline, sent, "drainer") == drained[200]


def test_a_junk_flooder_is_held_to_its_address_s_budget_refused_by_ingest_and_its_neighbours_are_served(
        pipeline, edge):
    """50 junk bodies a second from one address for three minutes: the edge lets EDGE_EVENTS_IP_REQUESTS_PER_MINUTE
    through (the license could be in the body, so Cloud Armor cannot tell junk from an export), ingest refuses those
    with a 400 from its first parse; the NAT's instances are served throughout."""
    junk = [Call(i / 50, "127.0.0.66", body=b"\x00junk" * 20, headers=(("Content-Type", "application/json"),),
                 who="flooder") for i in range(50 * 180)]
    mix = junk + neighbours(pipeline, 40, 3)
    sent = edge.send(mix)
    assert sent.statuses("neighbour") == {200: 40 * 3}
    flood = sent.statuses("flooder")
    assert flood.keys() == {400, 429} and flood[400] <= EVENTS_IP_PER_MINUTE * 3
    refusals = {orjson.loads(body)["error"]["code"] for call, status, body in sent.answers
                if call.who == "flooder" and status == 400}
    assert refusals == {"malformed_json"}
    assert landed(pipeline, sent, "neighbour") == 40 * 3


def test_a_stolen_license_used_from_fifty_addresses_shares_the_license_s_one_bucket(pipeline, edge):
    stolen = pipeline.issue_license()
    mix = [batch(stolen, "stolen", in_header=True, at=i / 10, ip=f"127.0.1.{i % 50 + 1}", who="thief")
           for i in range(10 * 300)]  # 10 a second for five minutes, round the addresses
    sent = edge.send(mix)
    through = sent.statuses("thief")[200]
    assert LICENSE_PER_MINUTE * 5 <= through <= LICENSE_PER_MINUTE * 6
    assert {status for status in sent.statuses("thief")} == {200, 429}


def test_uptime_checks_are_served(edge):
    checks = [Call(minute * 60 + n, f"127.0.2.{n + 1}", path=path, who="uptime") for minute in range(10)
              for n in range(6) for path in ("/__heartbeat__", "/__lbheartbeat__")]
    assert edge.send(checks).statuses() == {200: len(checks)}


@pytest.mark.parametrize("route", ["through the edge", "directly"])
def test_a_forged_forwarded_for_cannot_put_a_flood_in_its_victim_s_bucket(pipeline, log_upstream, route):
    """The flooder writes `X-Forwarded-For: <victim>, <edge address>`. Through the edge the balancer appends the
    flooder's own address and the edge's; directly, the function URL's front end appends the flooder's address
    (what Google does there is not documented: modelled as appending the caller's address only). Either way ingest
    counts the flood under the flooder, so the victim's refused requests still get their own request-log rows."""
    rules = policy_rules(SETTINGS) if route == "through the edge" else [DEFAULT_RULE]
    address = EDGE_ADDRESS if route == "through the edge" else None
    front = Edge(log_upstream.url, rules, OVER_RATE, address=address)
    tag = uuid.uuid4().hex[:6]
    try:
        def refused(i: int, ip: str, who: str, forged: str | None = None) -> Call:
            headers = [("Content-Type", "application/json"), ("User-Agent", f"{who}-{tag}/1")]
            if forged:
                headers.append(("X-Forwarded-For", forged))
            return Call(i, ip, body=b"{}", headers=tuple(headers), who=who)

        flood = [refused(i, "127.0.0.66", "flooder", forged=f"{NAT}, {EDGE_ADDRESS}") for i in range(30)]
        victim = [refused(30 + i, NAT, "victim") for i in range(3)]
        sent = front.send(flood + victim)
    finally:
        front.stop()
    assert sent.statuses() == {400: 33}
    flush_request_log(log_upstream.url, LOG_WINDOW_S + 0.5)  # the window ended: the next one starts clean
    victim_rows = request_rows(pipeline, "user_agent", [f"victim-{tag}/1"], 3)
    assert Counter(r["outcome"] for r in victim_rows) == {"refused": 3}
    flooder_rows = request_rows(pipeline, "user_agent", [f"flooder-{tag}/1"], PER_CLIENT)
    assert Counter(r["outcome"] for r in flooder_rows) == {"refused": PER_CLIENT}


@pytest.mark.parametrize("ban_counts", [OVER_RATE, ALL_REQUESTS])
def test_a_scanner_is_banned_at_the_edge_and_its_refusals_never_reach_the_function(upstream, ban_counts):
    """Other paths fall to the rule that bans: the scanner is throttled, then banned under either reading of what
    a ban counts, and the function sees only what the throttle let through (404s; the dashboard's load balancer
    line counts the refusals, the function's does not)."""
    rules = policy_rules(SETTINGS)
    scanner_rule = next(r for r in armor.rules(SETTINGS) if r.action == "rate_based_ban")
    front = Edge(upstream.url, rules, ban_counts)
    try:
        scan = [Call(i * 0.1, "127.0.0.99", path=f"/wp-login.php?{i}", who="scanner") for i in range(1500)]
        sent = front.send(scan)
    finally:
        front.stop()
    through = sent.statuses("scanner")[404]
    assert through <= scanner_rule.count * 3 and sent.statuses("scanner")[429] == len(scan) - through
    assert (4000, ("IP", "127.0.0.99")) in front.balancer.armor.banned_until
