"""The caller's address ingest keys its per-client bounds on (shared/ingest/http.py client_address)."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.ingest.http import client_address

EDGE = "34.120.0.9"


def request(forwarded: str | None, peer: str = "10.0.0.1") -> Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return Request(EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": peer}).get_environ())


@pytest.mark.parametrize(("forwarded", "edge", "client"), [
    (None, EDGE, "10.0.0.1"),                                  # no header: the peer
    ("198.51.100.4", EDGE, "198.51.100.4"),                    # a direct call: what Google's front end appended
    (f"198.51.100.4,{EDGE}", EDGE, "198.51.100.4"),            # through the load balancer: the entry before it
    (f"203.0.113.66, 198.51.100.4, {EDGE}", EDGE, "198.51.100.4"),  # the caller's own entries come first
    (f"203.0.113.66, {EDGE}, 198.51.100.4", EDGE, "198.51.100.4"),  # direct, forging "<victim>, <edge>": itself
    (f"198.51.100.4,{EDGE}", None, EDGE),                      # no EDGE_ADDRESS set: the last entry
    (EDGE, EDGE, EDGE),                                        # only the edge's address: nothing before it
])
def test_the_client_is_the_entry_before_the_edge_s_address_else_the_last(forwarded, edge, client):
    assert client_address(request(forwarded), edge) == client
