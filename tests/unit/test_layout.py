"""Dependencies point one way: functions' subpackages import the top level, never each other or the tools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
ROOMS = ("ingest", "sink", "tools")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "shared" or n.startswith("shared.")}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "top"


@pytest.mark.parametrize("path", sorted(SHARED.rglob("*.py")), ids=lambda p: str(p.relative_to(SHARED)))
def test_imports_point_one_way(path):
    here = path.relative_to(SHARED).parts[0] if path.parent != SHARED else "top"
    allowed = {"top": {"top"}, "ingest": {"top", "ingest"}, "sink": {"top", "sink"}, "tools": {"top", *ROOMS}}[here]
    assert {room(m) for m in imported(path)} <= allowed, imported(path)
