"""The one dependency rule: ``jobs`` imports no component; ``webhook_api`` and ``worker`` never import each other
or ``retrain`` (which stands on top of them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Packages each package must never import.
FORBIDDEN = {
    "jobs": {"webhook_api", "worker", "retrain"},
    "webhook_api": {"worker", "retrain"},
    "worker": {"webhook_api", "retrain"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_sibling_or_upper_floor_when_layered(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}
