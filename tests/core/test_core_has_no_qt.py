"""Core must stay free of Qt: importing every core module leaves PySide6 unloaded."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

SCRIPT = """
import importlib, pkgutil, sys
import core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6"))
print(len(names), loaded)
"""


def test_importing_all_of_core_loads_no_qt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, check=True
    )
    count, loaded = done.stdout.strip().split(" ", 1)
    assert int(count) >= 8  # model, store, lab, events, backend, cli, status, errors, ...
    assert loaded == "[]"
