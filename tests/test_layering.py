"""DESIGN.md rule 1: the cores import no asyncio, socket, time or sqlalchemy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sipdialer"
CORES = ["sip", "calls", "dialer", "media"]
# Shell modules inside core packages: they own IO and the clock by design.
SHELLS = {
    "dialer/runner.py",
    "dialer/runner_store.py",
    "dialer/runner_views.py",
    "media/udp.py",
    "media/socket.py",
    "media/bridge.py",
    "media/fastio.py",
}
FORBIDDEN = {"asyncio", "socket", "time", "sqlalchemy", "selectors", "threading"}


def core_modules() -> list[Path]:
    files = []
    for core in CORES:
        for path in sorted((PACKAGE / core).rglob("*.py")):
            if path.relative_to(PACKAGE).as_posix() not in SHELLS:
                files.append(path)
    return files


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_there_are_core_modules() -> None:
    assert len(core_modules()) >= 5


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_io(path: Path) -> None:
    bad = imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
