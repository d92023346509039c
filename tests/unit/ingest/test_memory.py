"""The parse budget: bodies are costed on their bytes and held to a process-wide budget."""

from __future__ import annotations

import threading
import time

import pytest

from shared.errors import PayloadTooLarge, Unavailable
from shared.ingest.memory import ParseBudget, parsed_cost


def test_cost_counts_containers_and_values():
    containers, cost = parsed_cost(b'{"events": [{}, {}, {"a": [1, 2]}]}')
    assert containers == 6 and cost > len(b'{"events": [{}, {}, {"a": [1, 2]}]}')


def test_object_bomb_is_refused_before_parsing():
    budget = ParseBudget(128 << 20, retry_after_s=3)
    with pytest.raises(PayloadTooLarge) as exc, budget.reserve(b"[" + b"{}," * 200_000 + b"{}]", max_events=1000):
        pass
    assert exc.value.code == "body_too_complex" and budget.used == 0


def test_a_body_bigger_than_the_whole_budget_is_413_not_a_wait():
    with pytest.raises(PayloadTooLarge), ParseBudget(1 << 20, 3).reserve(b'"' + b"a," * 600_000 + b'"', 1000):
        pass


def test_concurrent_bodies_wait_for_room_then_get_503():
    budget = ParseBudget(2 << 20, retry_after_s=7, wait_s=0.3)
    body = b"[" + b"1," * 8_000 + b"1]"  # ~0.5 MiB once parsed: two fit, then three times that does not
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with budget.reserve(body, 1000):
            entered.set()
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    entered.wait(5)
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Unavailable) as exc, budget.reserve(body * 3, 1000):
        pass
    assert exc.value.retry_after == 7 and 0.25 < time.monotonic() - started < 1.0
    release.set()
    for t in holders:
        t.join()
    assert budget.used == 0
    with budget.reserve(body, 1000) as cost:
        assert budget.used == cost
