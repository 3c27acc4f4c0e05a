"""The boundaries of DESIGN.md, checked on the source: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(folder: str) -> dict[str, set[str]]:
    """Every module a package's files import, by file (absolute imports)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_gui_knows_no_backend() -> None:
    offenders = {
        f: sorted(n for n in names if n.startswith("core.backends"))
        for f, names in _imports("gui").items()
    }
    assert {f: n for f, n in offenders.items() if n} == {}


def test_operations_and_rules_know_no_backend() -> None:
    for folder in ("core/operations", "core/rules"):
        offenders = {
            f: sorted(n for n in names if n.startswith("core.backends"))
            for f, names in _imports(folder).items()
        }
        assert {f: n for f, n in offenders.items() if n} == {}, folder


def test_the_only_place_that_makes_a_backend_is_the_connection() -> None:
    users = [
        f
        for folder in ("core", "gui")
        for f, names in _imports(folder).items()
        if "core.backends.lab.LabBackend" in names and not f.startswith("core/backends/")
    ]
    assert users == ["core/connection.py"]


def test_rules_import_nothing_that_does_io() -> None:
    io_modules = {"os", "shutil", "subprocess", "sqlite3", "socket", "core.fsinfo"}
    offenders = {
        f: sorted(n for n in names if n.split(".")[0] in io_modules or n in io_modules)
        for f, names in _imports("core/rules").items()
    }
    assert {f: n for f, n in offenders.items() if n} == {}
