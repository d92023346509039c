"""Run the project's functions under functions-framework (real HTTP), as deployed."""

from __future__ import annotations

import sys
from pathlib import Path

from devtools.procs import ROOT, Service, free_port, start

FUNCTIONS = {
    "ingest": ("functions/ingest/main.py", "http"),
    "sink": ("functions/sink/main.py", "cloudevent"),
}


def start_function(target: str, env: dict[str, str], port: int | None = None, *, workers: int = 1,
                   threads: int = 8, source: str | None = None) -> Service:
    """Start functions-framework for one function with the repository root on PYTHONPATH."""
    default_source, signature = FUNCTIONS[target]
    source = source or default_source
    port = port or free_port()
    exe = str(Path(sys.executable).parent / "functions-framework")
    cmd = [exe, f"--target={target}", f"--source={source}", f"--signature-type={signature}",
           "--host=127.0.0.1", f"--port={port}"]
    full_env = {"PYTHONPATH": str(ROOT), "WORKERS": str(workers), "THREADS": str(threads),
                "PYTHONUNBUFFERED": "1", **env}
    return start(f"fn-{target}", cmd, port, full_env).wait_ready(30)
