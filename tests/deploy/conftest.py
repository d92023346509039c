"""A committed copy of the working tree for deploy.sh (it stages exactly a git ref)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.procs import ROOT


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """A committed copy of the working tree (deploy.sh stages exactly a git ref)."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=dest, check=True)
    return dest
