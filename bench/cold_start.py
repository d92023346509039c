"""Cold-start import time of each function, from a staged folder as deploy.sh builds it.

Each sample is a fresh interpreter that imports the function's `main.py` from its own folder (as
functions-framework does when an instance starts); the figure is the median wall time of the import.
`python -m bench.cold_start [ROOT]` measures the tree at ROOT (default: this repository).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

REPO = Path(__file__).resolve().parent.parent
SAMPLES = 7
PROBE = """
import sys, time
started = time.perf_counter()
import main
elapsed = time.perf_counter() - started
print(elapsed, len(sys.modules))
"""


def _public_key_line() -> bytes:
    """An authorized_keys line of a fresh Ed25519 key (dev refuses to start without a trusted key)."""
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b" bench\n"


def stage(root: Path, function: str, dest: Path) -> Path:
    """The function's folder: main.py beside the packages deploy.sh ships for it."""
    folder = dest / function
    folder.mkdir(parents=True)
    shutil.copy(root / "functions" / function / "main.py", folder / "main.py")
    if (root / "shared" / function).is_dir():  # the layout that ships only what a function runs
        (folder / "shared").mkdir()
        for module in (root / "shared").glob("*.py"):
            shutil.copy(module, folder / "shared" / module.name)
        shutil.copytree(root / "shared" / function, folder / "shared" / function,
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:  # the old layout: the whole package beside each function
        shutil.copytree(root / "shared", folder / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def sample(folder: Path, env: dict[str, str]) -> tuple[float, int]:
    """(seconds to import main, modules loaded) in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    seconds, modules = out.stdout.split()
    return float(seconds), int(modules)


def measure(root: Path = REPO, samples: int = SAMPLES) -> dict:
    """Median import seconds and module counts of ingest and sink staged from root."""
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "dev.pub"
        keys.write_bytes(_public_key_line())
        env = {"PATH": "/usr/bin:/bin", "TELEMETRY_ENV": "dev", "TRUSTED_LICENSE_KEYS_FILE": str(keys),
               "PYTHONDONTWRITEBYTECODE": "1"}
        for function in ("ingest", "sink"):
            folder = stage(root, function, Path(tmp))
            sample(folder, env)  # warm the OS file cache and compile nothing afterwards
            runs = [sample(folder, env) for _ in range(samples)]
            times = sorted(t for t, _ in runs)
            results[function] = {"median_s": statistics.median(times), "min_s": times[0], "max_s": times[-1],
                                 "modules": runs[0][1]}
    return results


def main(argv: list[str]) -> int:
    """Print the figures for the tree at argv[0] (default: this repository)."""
    root = Path(argv[0]).resolve() if argv else REPO
    for function, figures in measure(root).items():
        print(f"{function:<7} import {figures['median_s'] * 1000:6.0f} ms (min {figures['min_s'] * 1000:.0f}, "
              f"max {figures['max_s'] * 1000:.0f}), {figures['modules']} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
