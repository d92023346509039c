"""Fault: an ingest worker SIGKILLed while it publishes. Its clients' connections break; they re-send what was not
listed as succeeded; gunicorn starts a new worker while the other one keeps serving. 0 lost; duplicates (batches
the dead worker had published but never answered) only in `events`, never in `events_deduped`.

A fault test like those of test_faults.py (same figures to $FAULTS_RECORD, run by `make faults`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from devtools.functions import start_function
from devtools.procs import Service, wait_for_workers, workers_of
from tests.integration import faults
from tests.integration.faults import ids_in, record, wait_for_ids
from tools.client import Report, Sender
from tools.generate import generate

pytestmark = pytest.mark.integration
redelivering_emulator = faults.redelivering_emulator  # autouse: the patched emulator

SENDERS, PER_SENDER, BATCH = 4, 1500, 100
# Two kills, each of the worker holding the most client requests, once this many events are answered:
# 1. Pub/Sub frozen FROZEN_BEFORE_KILL_S before it (publishes under way, none confirmed) and thawed 0.2 s after,
#    well under the publish timeout (2 s here), so no 503s mix in;
# 2. Pub/Sub live, once gunicorn has replaced the first victim (a publish may be confirmed and never answered:
#    the source of duplicates in `events`).
FROZEN_KILL_AFTER, LIVE_KILL_AFTER = 1000, 3000
FROZEN_BEFORE_KILL_S = 0.8

def client_connections(pid: int, port: int) -> int:
    """Established TCP connections process pid holds on local port `port` (clients of the server there)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


class CountingSession(requests.Session):
    """A requests session that counts the client's broken connections and 5xx answers (then behaves as usual)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: Counter = Counter()
        self.broken_at: list[float] = []  # time.monotonic() of each broken connection

    def post(self, *args, **kwargs) -> requests.Response:
        try:
            resp = super().post(*args, **kwargs)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self.outcomes[f"broken ({type(exc).__name__})"] += 1
            self.broken_at.append(time.monotonic())
            raise
        self.outcomes[resp.status_code] += 1
        return resp


@pytest.fixture
def ingest(pipeline) -> Service:
    """An ingest server of this test's own: 2 gunicorn workers (killing one leaves the other), pipeline's topic."""
    service = start_function("ingest", pipeline.env, workers=2, threads=4)
    try:
        wait_for_workers(service.proc.pid, 2)
        yield service
    finally:
        service.stop()


def test_worker_killed_while_publishing_loses_nothing(pipeline, ingest):
    """SIGKILL the ingest worker holding the most requests twice, Pub/Sub frozen (publishes under way) then live:
    the clients see broken connections and re-send; every event lands once in events_deduped."""
    started = time.monotonic()
    master = ingest.proc.pid
    before = wait_for_workers(master, 2)
    instance = f"inst-kill-{uuid.uuid4().hex[:6]}"
    events = [event for _, event in generate(SENDERS * PER_SENDER, instances=2, days=2, seed=23)]
    sessions = [CountingSession() for _ in range(SENDERS)]
    senders = [Sender(ingest.url, pipeline.issue_license(), instance, batch_size=BATCH, max_time_s=180,
                      session=session) for session in sessions]
    reports: list[Report | None] = [None] * SENDERS
    errors: list[BaseException] = []
    answered, lock = [0], threading.Lock()
    kills: list[dict] = []  # victim, the workers' client connections then, seconds since start, pubsub state

    def kill_busiest(pubsub: str) -> None:
        held = {pid: client_connections(pid, ingest.port) for pid in workers_of(master)}
        victim = max(held, key=held.get)
        # The time before the kill: the clients whose requests break may run (and note when) before this
        # thread runs again, above all on a busy machine; a time taken after the kill left them out.
        at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        kills.append({"victim": victim, "connections": held, "time": at, "pubsub": pubsub})

    def kill_twice() -> None:
        """The frozen kill now; the live one once LIVE_KILL_AFTER events are answered and the first victim has
        been replaced (so it too leaves a worker serving). No lock held at either kill: the senders run on."""
        pipeline.pubsub.signal(signal.SIGSTOP)
        try:
            time.sleep(FROZEN_BEFORE_KILL_S)
            kill_busiest("frozen")
            time.sleep(0.2)
        finally:
            pipeline.pubsub.signal(signal.SIGCONT)
        replaced = False
        while not done.is_set():
            replaced = replaced or (len(pids := workers_of(master)) == 2 and kills[0]["victim"] not in pids)
            if replaced and answered[0] >= LIVE_KILL_AFTER:
                kill_busiest("live")
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_twice)
    done = threading.Event()  # every sender finished

    def progress(count: int) -> None:
        """Called by each client after each answered batch: the kills start once enough events are through."""
        with lock:
            answered[0] += count
            if answered[0] >= FROZEN_KILL_AFTER and not killer.ident:
                killer.start()

    def run(i: int) -> None:
        try:
            reports[i] = senders[i].send(events[i * PER_SENDER:(i + 1) * PER_SENDER], progress)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(SENDERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
    finally:
        done.set()
        if killer.ident:
            killer.join()
        pipeline.pubsub.signal(signal.SIGCONT)
    assert not errors, f"a client raised: {errors!r}"
    assert [k["pubsub"] for k in kills] == ["frozen", "live"], f"the kills did not both happen: {kills}"
    assert all(k["connections"][k["victim"]] > 0 for k in kills), f"a killed worker held no request: {kills}"
    victims = {k["victim"] for k in kills}
    after = wait_for_workers(master, 2, exclude=victims)  # gunicorn replaced each; the other one served on
    assert set(before) - victims <= set(after)

    outcomes = sum((s.outcomes for s in sessions), Counter())
    broken_at = sorted(t for s in sessions for t in s.broken_at)
    for kill, later in zip(kills, [*kills[1:], {"time": float("inf")}], strict=True):
        kill["broken"] = sum(kill["time"] <= t < later["time"] for t in broken_at)
    broken = len(broken_at)
    retries = sum(r.retries for r in reports)
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    assert sum(r.succeeded for r in reports) == len(events)
    assert kills[0]["broken"] > 0, f"no request broke when the worker publishing was killed: {kills}"
    assert broken > 0, f"no client saw a broken connection: {dict(outcomes)}"
    assert retries >= broken, "a broken request was not re-sent"

    sent = [e["id"] for e in events]
    got = wait_for_ids(pipeline, instance, set(sent))
    rows = ids_in(pipeline, "events", instance)
    record("worker_kill", len(sent), len(rows), len(set(got) & set(sent)), started)
    assert sorted(got) == sorted(sent)  # exactly the sent ids, each once
    assert set(rows) == set(sent) and len(rows) >= len(sent)
    duplicates = len(rows) - len(set(rows))
    killed = "; ".join(f"worker {k['victim']} at {k['time'] - started:.1f} s, Pub/Sub {k['pubsub']}, holding "
                       f"{k['connections'][k['victim']]} of {sum(k['connections'].values())} client connections, "
                       f"{k['broken']} requests broken" for k in kills)
    print(f"\nSIGKILLed {killed}; workers {before} -> {after}; client answers {dict(outcomes)}, {retries} retried; "
          f"sent {len(sent)}, rows {len(rows)} ({duplicates} duplicates in events), deduped {len(got)}, "
          f"lost {len(set(sent) - set(got))}, {time.monotonic() - started:.0f} s")
