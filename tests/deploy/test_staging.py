"""Each function ships only what it runs: its part of `shared`, and imports nothing beyond its requirements."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

# Imports main.py in the staged folder with every installed distribution outside `allowed` hidden, as if
# the function's own requirements were all that is installed (as on Cloud Functions).
PROBE = r"""
import importlib.machinery, importlib.metadata, json, os, sys
allowed = set(json.loads(sys.argv[1]))
owner = {}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    for file in dist.files or ():
        owner[os.path.realpath(dist.locate_file(file))] = name

class Hide:
    def find_spec(self, fullname, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        dist = owner.get(os.path.realpath(spec.origin)) if spec and spec.origin else None
        if dist and dist not in allowed:
            raise ModuleNotFoundError(f"{fullname} belongs to {dist}, not in requirements.txt", name=fullname)
        return None

sys.meta_path.insert(0, Hide())
for name in sys.argv[2:]:
    try:
        __import__(name)
        print("imported", name)
    except ModuleNotFoundError as exc:
        print("missing", name, exc)
"""


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def closure(requirements: Path) -> set[str]:
    """Distributions a requirements file installs: the listed ones and their dependencies (extras followed)."""
    todo = [Requirement(line.strip()) for line in requirements.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        extras = req.extras
        if name in seen and not extras:
            continue
        seen.add(name)
        for dep in metadata.requires(req.name) or ():
            dep_req = Requirement(dep)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if dep_req.marker is None or any(dep_req.marker.evaluate(env) for env in envs):
                todo.append(dep_req)
    return seen


@pytest.fixture(scope="module")
def staged(repo) -> Path:
    """build/dev as `deploy.sh dev --plan` stages it (no gcloud needed)."""
    out = subprocess.run(["bash", str(repo / "deploy.sh"), "dev", "--plan"], cwd=repo, capture_output=True,
                         text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr
    return repo / "build" / "dev"


def probe(folder: Path, allowed: set[str], *modules: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "TELEMETRY_ENV": "dev", "PYTHONDONTWRITEBYTECODE": "1",
           "TRUSTED_LICENSE_KEYS_FILE": str(folder.parent / "ingest" / "config" / "trusted-license-keys.pub")}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sorted(allowed)), *modules], cwd=folder,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return {line.split()[1]: line for line in out.stdout.splitlines()}


@pytest.mark.parametrize(("function", "other"), [("ingest", "sink"), ("sink", "ingest")])
def test_function_folder_holds_its_own_part_only(staged, function, other):
    shared = staged / function / "shared"
    assert (shared / function).is_dir() and (shared / "settings.py").exists()
    assert not (shared / other).exists() and not (shared / "tools").exists()
    assert (staged / function / "requirements.txt").read_text() == \
        (staged / "src" / "functions" / function / "requirements.txt").read_text()


@pytest.mark.parametrize("function", ["ingest", "sink"])
def test_function_imports_only_its_requirements(staged, function):
    allowed = closure(staged / function / "requirements.txt")
    result = probe(staged / function, allowed, "main")
    assert result["main"].startswith("imported"), result["main"]


def test_the_probe_hides_what_a_function_does_not_declare(staged):
    allowed = closure(staged / "sink" / "requirements.txt")
    assert "marshmallow" not in allowed and "google-cloud-pubsub" not in allowed
    result = probe(staged / "sink", allowed, "marshmallow", "google.cloud.pubsub_v1", "shared.ingest", "orjson")
    assert result["marshmallow"].startswith("missing") and result["google.cloud.pubsub_v1"].startswith("missing")
    assert result["shared.ingest"].startswith("missing") and result["orjson"].startswith("imported")
