"""`make soak`: the whole local pipeline under steady load for SOAK_MINUTES, a fault every interval in turn.

Load: half the throughput `make bench` measured (bench/results.json), of the slower of its two stages: HTTP
ingest and the sink's rows/s into the BigQuery emulator (fed faster than its slowest stage, a pipeline only
builds a backlog). SOAK_RATE (events/s) overrides it. Four senders, each with its own license, send 500-event
batches on a fixed schedule through tools.client (retrying as a client does) and catch up after a fault; two send
JSON bodies, two protobuf bodies. The request log is on (REQUEST_LOG, ingest's default): each line also counts the
interval's requests and their rows in `requests`.

The first interval is the warm-up; each later one starts with a fault, in turn: Pub/Sub frozen 10 s, BigQuery
frozen 30 s, the sink killed (SIGKILL; a new one starts on its port), an ingest worker killed (SIGKILL; gunicorn
starts another). Each interval sends as an instance id of its own, so its line counts its own events: sent,
accepted, rows in `events`, ids in `events_deduped`, duplicates there, not landed yet, p50/p99 of its requests,
RSS of each process group. Then the senders stop, every accepted event is waited for (SOAK_SETTLE_SECONDS), and
the table is printed again with what was lost, and the totals. Exit 1 unless 0 lost, 0 duplicates in the view,
nothing dead-lettered, and the functions' RSS at each interval's end within 10% of the warm-up's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from devtools.emulators import PUBSUB_HEAP_MB
from devtools.pipeline import LocalPipeline
from devtools.procs import ROOT, Service, group_rss_bytes, wait_for_workers, workers_of
from tools.client import FORMATS, Sender
from tools.generate import generate
from tools.settings import settings_file

SENDERS, BATCH = 4, 500
RSS_GROWTH_LIMIT = 0.10
BENCH_RESULTS = ROOT / "bench" / "results.json"
SERVICES = ("ingest", "sink", "pubsub", "bigquery")


@dataclass
class Interval:
    """One interval's load and what became of it."""

    number: int
    instance: str
    fault: str
    sent: int = 0
    accepted: set[str] = field(default_factory=set)
    unfinished: int = 0  # given up or refused by ingest (never accepted)
    requests: int = 0  # POSTs made (retries included)
    logged: int = 0  # their rows in `requests` (the request log)
    latencies: list[float] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    rows: int = 0  # rows in `events` (duplicates from redelivery included)
    view_rows: int = 0
    view_ids: int = 0
    lost: int | None = None

    @property
    def duplicates(self) -> int:
        """Rows in events_deduped beyond one per event id."""
        return self.view_rows - self.view_ids

    def line(self) -> str:
        """The interval's line of the table."""
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        pending = len(self.accepted) - self.view_ids
        landing = f"lost {self.lost:6d}" if self.lost is not None else f"pending {pending:4d}"
        rss = " ".join(f"{name} {self.rss_mb.get(name, 0):5.0f}" for name in SERVICES)
        return (f"{self.number:3d} {self.fault:<22} sent {self.sent:7d} accepted {len(self.accepted):7d} "
                f"rows {self.rows:7d} view {self.view_ids:7d} dups {self.duplicates} {landing} "
                f"requests {self.requests:5d} logged {self.logged:5d} "
                f"p50/p99 {statistics.median(lat) * 1000:4.0f}/{p99 * 1000:5.0f} ms  RSS MB {rss}")


class AcceptingSender(Sender):
    """tools.client's Sender that also keeps the ids ingest listed as succeeded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accepted: list[str] = []

    def _answered(self, batch: list, doc: dict, report, pending) -> int:  # noqa: ANN001 - Sender's
        self.accepted += doc["succeededEvents"]
        return Sender._answered(batch, doc, report, pending)


class TimedSession(requests.Session):
    """Appends each POST's seconds to `latencies` (the current interval's list)."""

    latencies: list[float]

    def post(self, *args, **kwargs) -> requests.Response:
        started = time.perf_counter()
        try:
            return super().post(*args, **kwargs)
        finally:
            self.latencies.append(time.perf_counter() - started)


class Load:
    """SENDERS threads sending BATCH-event batches at `rate` events/s in all, as the current interval's instance."""

    def __init__(self, pipeline: LocalPipeline, rate: float, salt: int) -> None:
        self.pipeline, self.salt = pipeline, salt
        self.period = BATCH * SENDERS / rate  # seconds between one sender's batches
        self.licenses = [pipeline.issue_license() for _ in range(SENDERS)]
        self.current: Interval | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(i,), name=f"sender-{i}") for i in range(SENDERS)]

    def start(self, interval: Interval) -> None:
        """Start sending as `interval`."""
        self.current = interval
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Stop scheduling batches; wait for those under way (they retry until answered)."""
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _send(self, i: int) -> None:
        session = TimedSession()
        first = time.monotonic() + i * self.period / SENDERS
        n = 0
        while not self.stopping.wait(max(0.0, first + n * self.period - time.monotonic())):
            interval = self.current
            events = [e for _, e in generate(BATCH, instances=1, days=2, seed=hash((self.salt, i, n)))]
            session.latencies = interval.latencies
            sender = AcceptingSender(self.pipeline.ingest.url, self.licenses[i], interval.instance,
                                     batch_size=BATCH, max_time_s=900, session=session,
                                     body_format=FORMATS[i % len(FORMATS)])
            report = sender.send(events)
            with self.lock:
                interval.sent += len(events)
                interval.requests += report.requests
                interval.accepted.update(sender.accepted)
                interval.unfinished += report.gave_up + sum(report.refused.values())
            n += 1


def freeze(service: Service, seconds: float) -> None:
    """SIGSTOP a service's process group for `seconds` (its state kept), then SIGCONT."""
    service.signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        service.signal(signal.SIGCONT)


def kill_sink(pipeline: LocalPipeline) -> None:
    """SIGKILL the sink server's process group; a new one starts on its port (Pub/Sub's push endpoint)."""
    pipeline.sink.signal(signal.SIGKILL)
    pipeline.sink.proc.wait(10)
    time.sleep(2)  # pushes meanwhile find nothing listening
    pipeline.replace_sink()


def kill_ingest_worker(pipeline: LocalPipeline) -> None:
    """SIGKILL one gunicorn worker of ingest (requests on it break); wait until gunicorn has replaced it."""
    master = pipeline.ingest.proc.pid
    victim = random.choice(workers_of(master))
    os.kill(victim, signal.SIGKILL)
    wait_for_workers(master, pipeline.ingest_workers, exclude={victim})


FAULTS: tuple[tuple[str, Callable[[LocalPipeline], None]], ...] = (
    ("Pub/Sub frozen 10 s", lambda p: freeze(p.pubsub, 10)),
    ("BigQuery frozen 30 s", lambda p: freeze(p.bigquery.service, 30)),
    ("sink killed", kill_sink),
    ("ingest worker killed", kill_ingest_worker),
)


def rss_mb(pipeline: LocalPipeline) -> dict[str, float]:
    """RSS of each service's process group (gunicorn master and workers together), MB."""
    services = {"ingest": pipeline.ingest, "sink": pipeline.sink, "pubsub": pipeline.pubsub,
                "bigquery": pipeline.bigquery.service}
    return {name: sum(group_rss_bytes(s.proc.pid).values()) / 2**20 for name, s in services.items()}


def count(pipeline: LocalPipeline, interval: Interval) -> None:
    """Rows of the interval's instance in `events` and in `events_deduped` (rows and distinct ids)."""
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("instance", "STRING", interval.instance)])
    table = f"`{pipeline.project}.{pipeline.dataset}"
    client = pipeline.bq()

    def one(sql: str) -> tuple:
        return tuple(next(iter(client.query(sql, job_config=config, timeout=60).result(timeout=120))).values())

    (interval.rows,) = one(f"SELECT COUNT(*) FROM {table}.events` WHERE instance_id = @instance")
    interval.view_rows, interval.view_ids = one(
        f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {table}.events_deduped` WHERE instance_id = @instance")
    (interval.logged,) = one(f"SELECT COUNT(*) FROM {table}.requests` WHERE instance_id = @instance")


def settle_lost(pipeline: LocalPipeline, interval: Interval) -> int:
    """Accepted ids of the interval missing from events_deduped.

    The view holds only ids this soak generated for the instance; when every sent event was accepted and the view
    holds as many distinct ids as were accepted, the two sets are equal. Otherwise the ids are read and compared.
    """
    if interval.unfinished == 0 and interval.view_ids == len(interval.accepted) == interval.sent:
        return 0
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("instance", "STRING", interval.instance)])
    sql = (f"SELECT DISTINCT event_id FROM `{pipeline.project}.{pipeline.dataset}.events_deduped` "
           "WHERE instance_id = @instance")
    landed = {row.event_id for row in pipeline.bq().query(sql, job_config=config, timeout=60).result(timeout=600)}
    return len(interval.accepted - landed)


def dead_lettered(pipeline: LocalPipeline) -> int:
    """Messages waiting on the dead-letter subscription (pulled, not acked)."""
    try:
        answer = pipeline.subscriber.pull(request={"subscription": pipeline.dead_letter_subscription,
                                                   "max_messages": 1000}, timeout=10)
    except gexc.DeadlineExceeded:
        return 0
    return len(answer.received_messages)


def rate_from_bench() -> float:
    """Half of the slower stage `make bench` measured: HTTP ingest, or the sink into the BigQuery emulator."""
    if not BENCH_RESULTS.exists():
        raise SystemExit(f"{BENCH_RESULTS} is missing: run `make bench` first (or set SOAK_RATE)")
    results = json.loads(BENCH_RESULTS.read_text())
    return min(results["http_events_per_s"], results["details"]["pipeline"]["sink"]["rows_per_s"]) / 2


def deployed(name: str) -> str:
    """A value of deploy/dev.env (the settings the deployed subscription gets)."""
    return settings_file("dev")[name]


def table(intervals: list[Interval]) -> str:
    """Header and one line per interval."""
    return "\n".join(["  # fault                  (each line: that interval's own events)",
                      *(i.line() for i in intervals)])


def pubsub_heap_mb(minutes: float, rate: float) -> int:
    """A heap for everything the run publishes (the emulator keeps every message), with room to spare."""
    per_event = json.loads(BENCH_RESULTS.read_text())["details"]["ingest"]["pubsub_bytes_per_event"] \
        if BENCH_RESULTS.exists() else 400.0
    return PUBSUB_HEAP_MB + int(minutes * 60 * rate * per_event * 1.5 / 2**20)


def run(minutes: float, interval_s: float, rate: float, settle_s: float) -> int:
    """The soak; 0 if it passed."""
    count_of = max(2, round(minutes * 60 / interval_s))
    salt = random.getrandbits(32)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill by pid still stops what it started
    pipeline = LocalPipeline(ROOT / ".local" / "soak", dataset="soak", ingest_workers=2,
                             max_delivery_attempts=int(deployed("MAX_DELIVERY_ATTEMPTS")),
                             pubsub_heap_mb=pubsub_heap_mb(minutes, rate)).start()
    intervals: list[Interval] = []
    print(f"soak: {count_of} intervals of {interval_s:g} s at {rate:,.0f} events/s ({SENDERS} senders, "
          f"{BATCH}-event batches); Pub/Sub emulator heap {pipeline.pubsub_heap_mb} MB; logs in "
          f"{pipeline.sink.log_path.parent}", flush=True)
    load = Load(pipeline, rate, salt)
    started = time.monotonic()
    try:
        for number in range(count_of):
            fault_name, fault = FAULTS[(number - 1) % len(FAULTS)] if number else ("(warm-up)", None)
            interval = Interval(number, f"soak-{salt:08x}-{number:02d}", fault_name)
            intervals.append(interval)
            if number == 0:
                load.start(interval)
            load.current = interval
            if fault:
                fault(pipeline)
            time.sleep(max(0.0, started + (number + 1) * interval_s - time.monotonic()))
            interval.rss_mb = rss_mb(pipeline)
            count(pipeline, interval)
            print(interval.line(), flush=True)
        load.stop()
        deadline = time.monotonic() + settle_s
        while True:
            for interval in intervals:
                count(pipeline, interval)
            if all(i.view_ids >= len(i.accepted) for i in intervals) or time.monotonic() > deadline:
                break
            time.sleep(5)
        for interval in intervals:
            interval.lost = settle_lost(pipeline, interval)
        letters = dead_lettered(pipeline)
    finally:
        load.stopping.set()
        pipeline.stop()
    return verdict(intervals, letters, time.monotonic() - started)


def verdict(intervals: list[Interval], letters: int, seconds: float) -> int:
    """Print the settled table and the totals; 0 if the soak passed."""
    print(f"\nsettled ({seconds:.0f} s in all):\n{table(intervals)}")
    base = intervals[0].rss_mb
    growth = {name: max(i.rss_mb[name] for i in intervals[1:]) / base[name] - 1 for name in ("ingest", "sink")}
    totals = {"sent": sum(i.sent for i in intervals), "accepted": sum(len(i.accepted) for i in intervals),
              "rows": sum(i.rows for i in intervals), "deduped": sum(i.view_ids for i in intervals),
              "duplicates in view": sum(i.duplicates for i in intervals),
              "lost": sum(i.lost for i in intervals), "never accepted": sum(i.unfinished for i in intervals),
              "dead-lettered messages": letters}
    print("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print("RSS growth after warm-up (largest interval end / warm-up end): "
          + ", ".join(f"{k} {v:+.1%}" for k, v in growth.items()) + f" (limit {RSS_GROWTH_LIMIT:+.0%})")
    ok = (totals["lost"] == 0 and totals["duplicates in view"] == 0 and letters == 0
          and all(g <= RSS_GROWTH_LIMIT for g in growth.values()))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    """CLI entry point; every option also has an environment variable (make soak passes them through)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--minutes", type=float, default=float(env("SOAK_MINUTES", "30")))
    parser.add_argument("--interval-seconds", type=float, default=float(env("SOAK_INTERVAL_SECONDS", "300")))
    parser.add_argument("--rate", type=float, default=float(env("SOAK_RATE", "0")) or None,
                        help="events/s (default: half of what make bench measured)")
    parser.add_argument("--settle-seconds", type=float, default=float(env("SOAK_SETTLE_SECONDS", "600")))
    args = parser.parse_args()
    return run(args.minutes, args.interval_seconds, args.rate or rate_from_bench(), args.settle_seconds)


if __name__ == "__main__":
    sys.exit(main())
