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


def test_concurrent_bodies_share_the_budget_wait_for_room_then_get_503():
    """Two bodies that fit together are held at once; a third waits for room and gets it when one leaves; one that
    finds no room within wait_s gets 503 with Retry-After."""
    body = b"[" + b"1," * 8_000 + b"1]"
    cost = parsed_cost(body)[1]
    budget = ParseBudget(2 * cost + cost // 2, retry_after_s=7, wait_s=2.0)  # room for two, not three
    inside, release, failures = threading.Barrier(3), threading.Event(), []

    def hold() -> None:
        try:
            with budget.reserve(body, 1000):
                inside.wait(5)  # both holders inside at once (and the test)
                release.wait(5)
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    inside.wait(5)
    assert budget.used == 2 * cost
    started = time.monotonic()
    with pytest.raises(Unavailable) as exc, budget.reserve(body, 1000):
        pass
    assert exc.value.retry_after == 7 and 1.9 < time.monotonic() - started < 4.0  # it waited wait_s for room
    waiting: list[float] = []

    def third() -> None:
        began = time.monotonic()
        with budget.reserve(body, 1000):
            waiting.append(time.monotonic() - began)

    late = threading.Thread(target=third)
    late.start()
    time.sleep(0.1)
    release.set()  # both holders leave while the third waits: it gets in
    late.join(10)
    for t in holders:
        t.join(5)
    assert failures == [] and len(waiting) == 1 and 0.05 < waiting[0] < 2.0
    assert budget.used == 0
