"""`make faults`: the fault tests, RUNS times in a row, while CPU burners keep both cores busy.

Each run is a fresh pytest process (its own emulators and functions) running the tests of
tests/integration/test_faults.py and test_fault_worker_kill.py in an order shuffled per run (`--alone`: one
pytest process per test).
The tests append their figures to a file per run ($FAULTS_RECORD); this prints one line per run and
exits 1 if any run lost an event, failed, or left a test without figures. Burners are stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from devtools.procs import ROOT, stat_fields

TESTS_FILE = "tests/integration/test_faults.py"
TESTS = (f"{TESTS_FILE}::test_pubsub_stall_under_client_load_loses_nothing",
         f"{TESTS_FILE}::test_bigquery_stall_is_redelivered_and_lands_once",
         f"{TESTS_FILE}::test_sink_crash_mid_batch_is_redelivered_and_deduplicated",
         "tests/integration/test_fault_worker_kill.py::test_worker_killed_while_publishing_loses_nothing")
RUN_TIMEOUT_S = 1200.0  # one pytest process; each test is also bounded by pytest-timeout (300 s)
BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def start_burners(count: int, seconds: float) -> list[subprocess.Popen]:
    """count busy-looping processes, each ending by itself after `seconds` at the latest."""
    return [subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)], stdin=subprocess.DEVNULL)
            for _ in range(count)]


def cpu_seconds(proc: subprocess.Popen) -> float:
    """CPU time (user + system) a running process has used so far, from /proc; 0 if it is gone."""
    fields = stat_fields(proc.pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate each process by its pid and wait for it."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def pytest_run(tests: list[str], record: Path, log: Path) -> int:
    """One pytest process over these tests (in this order); its exit code (124 on timeout)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    env = {**os.environ, "FAULTS_RECORD": str(record)}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            return proc.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # pytest tears its fixtures down: emulators stopped by pid
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            return 124


def run_once(number: int, tests: list[str], alone: bool, workdir: Path) -> tuple[bool, str]:
    """One run of the fault tests; (ok, the run's line)."""
    record, log = workdir / f"run-{number:02d}.jsonl", workdir / f"run-{number:02d}.log"
    record.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    started = time.monotonic()
    codes = [pytest_run([t], record, log) for t in tests] if alone else [pytest_run(tests, record, log)]
    seconds = time.monotonic() - started
    figures = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    total = {k: sum(f[k] for f in figures) for k in ("sent", "rows", "deduped", "lost")}
    missing = len(tests) - len(figures)
    ok = not any(codes) and missing == 0 and total["lost"] == 0
    order = ",".join(t.rsplit("::", 1)[1].removeprefix("test_").split("_")[0] for t in tests)
    line = (f"run {number:2d}: sent {total['sent']:5d}  rows {total['rows']:5d}  deduped {total['deduped']:5d}  "
            f"lost {total['lost']}  seconds {seconds:4.0f}  order {order}  "
            + ("ok" if ok else f"FAILED (pytest exit {codes}, {missing} tests without figures; {log})"))
    return ok, line


def main() -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burners", type=int, default=2, help="busy processes (one per core here)")
    parser.add_argument("--alone", action="store_true", help="each test in its own pytest process")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the per-run orders")
    args = parser.parse_args()
    workdir = ROOT / ".local" / "faults"
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    print(f"fault tests x{args.runs}, {args.burners} CPU burners, order seed {args.seed}, logs in {workdir}",
          flush=True)
    burners = start_burners(args.burners, seconds=args.runs * RUN_TIMEOUT_S * (3 if args.alone else 1))
    started, failed = time.monotonic(), 0
    try:
        for number in range(1, args.runs + 1):
            tests = rng.sample(TESTS, len(TESTS))
            ok, line = run_once(number, tests, args.alone, workdir)
            failed += not ok
            print(line, flush=True)
    finally:
        burned = sum(cpu_seconds(p) for p in burners)
        stop(burners)
    print(f"burners: {burned:.0f} CPU-seconds in {time.monotonic() - started:.0f} s", flush=True)
    print(f"{args.runs - failed} of {args.runs} runs lost nothing and passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
