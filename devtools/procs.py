"""Start local processes on free ports and stop them by their own pid (process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".local" / "logs"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@dataclass
class Service:
    """A started process; its log goes to LOG_DIR/<name>.log."""

    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def host(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """http://host:port."""
        return f"http://{self.host}"

    def wait_ready(self, timeout: float = 60.0, ports: tuple[int, ...] = ()) -> Service:
        """Wait until every port accepts connections; raise with the log's tail if the process died."""
        deadline = time.monotonic() + timeout
        for port in ports or (self.port,):
            while not port_open(port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    self.stop()
                    raise RuntimeError(f"{self.name} did not start on port {port}:\n{tail}")
                time.sleep(0.1)
        return self

    def signal(self, sig: int) -> None:
        """Send a signal to the process group the service leads (its own pid)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after timeout; waits for the pid."""
        if self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)


def start(name: str, cmd: list[str], port: int, env: dict | None = None) -> Service:
    """Start cmd in its own process group with output to a log file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True,
    )
    log.close()
    return Service(name, proc, port, log_path)


def workers_of(master: int) -> list[int]:
    """Pids of the gunicorn master's live children (its workers), from /proc."""
    try:  # the children of its main thread: the arbiter forks there
        pids = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN: every process's parent
        pids = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _ppid(stat) == master]
    return sorted(pid for pid in pids if _state(pid) not in ("Z", "X", None))


def stat_fields(pid_or_stat: int | Path) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if the process is gone."""
    path = pid_or_stat if isinstance(pid_or_stat, Path) else Path(f"/proc/{pid_or_stat}/stat")
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ppid(stat: Path) -> int | None:
    fields = stat_fields(stat)
    return int(fields[1]) if fields else None


def _state(pid: int) -> str | None:
    fields = stat_fields(pid)
    return fields[0] if fields else None


def wait_for_workers(master: int, count: int, exclude: set[int] = frozenset(), timeout: float = 60) -> list[int]:
    """The master's workers once it has `count` of them, none in `exclude`; raises after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pids = workers_of(master)
        if len(pids) == count and not set(pids) & exclude:
            return pids
        if time.monotonic() > deadline:
            raise AssertionError(f"gunicorn {master} has workers {pids}, wanted {count} not among {sorted(exclude)}")
        time.sleep(0.1)


def group_rss_bytes(pgid: int) -> dict[int, int]:
    """Resident set size of every live process in process group pgid (a Service's own pid), by pid."""
    page = os.sysconf("SC_PAGE_SIZE")
    sizes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(stat)
        if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                sizes[int(stat.parent.name)] = int((stat.parent / "statm").read_text().split()[1]) * page
    return sizes
