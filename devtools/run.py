"""`make run`: the whole pipeline locally, a demo load, a summary; Ctrl-C stops everything it started."""

from __future__ import annotations

import signal
import sys
import time

from devtools.demo import run_demo
from devtools.pipeline import LocalPipeline
from devtools.procs import ROOT


def main() -> int:
    """`make run`: start everything, send a demo load, print a summary, wait for Ctrl-C."""
    pipeline = LocalPipeline(ROOT / ".local" / "pipeline")
    print("starting emulators and functions ...", flush=True)
    pipeline.start()
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        """The first Ctrl-C or SIGTERM stops everything; any later one is ignored, so it cannot cut the
        stopping short (a second SIGTERM used to land inside the `finally` and leave the processes running)."""
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        run_demo(pipeline)
        print("\nRunning. Ctrl-C stops everything this command started.", flush=True)
        while all(getattr(s, "service", s).proc.poll() is None for s in pipeline.services):
            time.sleep(1)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stopping.append(0)  # from here on every signal is ignored
        pipeline.stop()


if __name__ == "__main__":
    sys.exit(main())
