"""Startup: ``lkconsole`` to a shown main window, vs a bare PySide6 QMainWindow.

Both run as fresh processes, alternately, in the same run, on the offscreen platform
(or the display you have): from the moment the process is started until the window
has painted (for lkconsole: with the cluster's state in it), measured by this script.
The lab is created once beforehand; the first start of a new lab is shown apart.
Both use compiled bytecode, as an installed application does (pip compiles a wheel's
modules when it installs them): the benchmark's own cache folder, filled by the first
runs, even where PYTHONDONTWRITEBYTECODE is set.

    .venv/bin/python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _summary import record

REPO = Path(__file__).resolve().parent.parent
# At most twice the bare window: PySide's enums and Python 3.11's dataclasses alone add
# about half the bare window's time (measured and explained in the README's Performance
# section), before any of the console's own work.
GOAL = 2.0

BARE = """
import sys
import time
from PySide6.QtWidgets import QApplication, QMainWindow, QTreeView
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setCentralWidget(QTreeView())
window.resize(1024, 768)
window.show()
window.repaint()
print(f"shown at {time.monotonic():.6f}", flush=True)
"""

# The same bare window once it names Qt's namespace, as any window that sets an
# alignment or a dock area does: PySide then makes the namespace's 99 Python enums.
# Not the goal's baseline, only there to show what that part costs on this machine.
BARE_WITH_QT = BARE.replace("import time\n", "import time\nfrom PySide6.QtCore import Qt\n", 1)


def _time(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting the process to its window shown (painted).

    The process prints ``shown at <time.monotonic()>`` once painted; CLOCK_MONOTONIC is
    the same clock in every process, so the exit that follows is not counted.
    """
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr}")
    shown = [line for line in done.stdout.splitlines() if line.startswith("shown at ")]
    if not shown:
        raise SystemExit(f"{argv} did not say when it was shown: {done.stdout!r}")
    return float(shown[-1].removeprefix("shown at ")) - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "LKCONSOLE_HOME": str(Path(tmp) / "home"),
            "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
            "XDG_STATE_HOME": str(Path(tmp) / "state"),
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not any(env.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
            env["QT_QPA_PLATFORM"] = "offscreen"
        ours = [sys.executable, "-m", "gui.app", "--exit-when-shown"]
        bare = [sys.executable, "-c", BARE]
        bare_qt = [sys.executable, "-c", BARE_WITH_QT]
        first_run = _time(ours, env)  # creates the lab (and compiles our bytecode)
        _time(bare, env)  # warm the file cache (and compile the bytecode) for both
        _time(ours, env)
        bare_times, our_times, bare_qt_times = [], [], []
        for _ in range(args.runs):
            bare_times.append(_time(bare, env))
            our_times.append(_time(ours, env))
            bare_qt_times.append(_time(bare_qt, env))
    base, mine = statistics.median(bare_times), statistics.median(our_times)
    base_qt = statistics.median(bare_qt_times)
    ratio = mine / base
    rows = [
        (
            "start to shown window (median)",
            f"{base * 1000:.0f} ms",
            f"{mine * 1000:.0f} ms",
            f"{ratio:.2f}x",
            f"<= {GOAL}x",
            "yes" if ratio <= GOAL else "NO",
        ),
        (
            "best of runs",
            f"{min(bare_times) * 1000:.0f} ms",
            f"{min(our_times) * 1000:.0f} ms",
            f"{min(our_times) / min(bare_times):.2f}x",
            "",
            "",
        ),
        (
            "the bare window naming Qt's namespace (median)",
            f"{base_qt * 1000:.0f} ms",
            "",
            f"{base_qt / base:.2f}x",
            "",
            "",
        ),
        ("first start (creates the lab)", "", f"{first_run * 1000:.0f} ms", "", "", ""),
    ]
    _print_table(
        rows, f"startup.py: {args.runs} runs each, alternating, Python {sys.version.split()[0]}"
    )
    return 0 if ratio <= GOAL else 1


def _print_table(rows: list[tuple[str, ...]], title: str) -> None:
    header = ("measure", "baseline (bare QMainWindow)", "ours (lkconsole)", "ratio", "goal", "met")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print(title)
    for row in rows:
        if row[4]:  # a row with a goal goes in benchmarks/run_all.py's table too
            record(row[0], row[1], row[2], row[3], row[4], row[5] == "yes")
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
