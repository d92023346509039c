"""The tree's rules: who imports whom, what ships, and that unit tests start nothing."""

from __future__ import annotations

import ast
import socket
import subprocess
from pathlib import Path

import pytest

from tests.unit.conftest import StartedAProcess

ROOT = Path(__file__).resolve().parents[2]
SHARED, TOOLS = ROOT / "shared", ROOT / "tools"
ROOMS = ("ingest", "sink")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "top"


def project(names: set[str], package: str) -> set[str]:
    return {n for n in names if n == package or n.startswith(f"{package}.")}


@pytest.mark.parametrize("path", sorted(SHARED.rglob("*.py")), ids=lambda p: str(p.relative_to(SHARED)))
def test_shared_imports_point_one_way_and_never_at_tools(path):
    """shared/ingest and shared/sink import the top level, never each other; nothing in shared imports tools."""
    names = imported(path)
    here = path.relative_to(SHARED).parts[0] if path.parent != SHARED else "top"
    allowed = {"top": {"top"}, "ingest": {"top", "ingest"}, "sink": {"top", "sink"}}[here]
    assert {room(m) for m in project(names, "shared")} <= allowed, names
    assert not project(names, "tools") and not project(names, "devtools") and not project(names, "tests"), names


@pytest.mark.parametrize("path", sorted(TOOLS.rglob("*.py")), ids=lambda p: str(p.relative_to(TOOLS)))
def test_tools_may_import_shared_but_not_the_test_or_dev_trees(path):
    names = imported(path)
    assert not project(names, "tests") and not project(names, "devtools"), names


def test_license_signing_is_a_tool_not_in_the_ingest_function():
    """Only verification ships: nothing under shared signs or generates keys."""
    text = "\n".join(p.read_text() for p in SHARED.rglob("*.py"))
    assert ".sign(" not in text and "generate_private_key" not in text


def test_the_guard_refuses_processes_and_servers_in_unit_tests():
    with pytest.raises(StartedAProcess, match="subprocess"):
        subprocess.run(["true"], check=False)
    with socket.socket() as s, pytest.raises(StartedAProcess, match="listening socket"):
        s.bind(("127.0.0.1", 0))
        s.listen()


TESTS = ROOT / "tests"


@pytest.mark.parametrize("path", sorted(TESTS.rglob("test_*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_a_test_module_imports_no_other_test_module(path):
    """Shared test code lives in helper modules (tests/helpers.py, tests/integration/rows.py, ...)."""
    names = imported(path)
    assert not [n for n in names if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")], names
